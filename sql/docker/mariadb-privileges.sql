-- The privileges dbpipe's consistent snapshots need on MariaDB (see README:
-- "Privileges for consistent snapshots"): RELOAD for BACKUP STAGE, BINLOG
-- MONITOR for the binary log position. Run by the image's entrypoint as root.
GRANT RELOAD, BINLOG MONITOR ON *.* TO 'dbpipe'@'%';
