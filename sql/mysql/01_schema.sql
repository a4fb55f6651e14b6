-- Shop schema for MariaDB: customers, products, orders, order_items, events.
--
-- Loaded by scripts/dbs and by the mariadb image (docker-entrypoint-initdb.d),
-- in both cases with the target database selected, so this file creates no
-- database or user. sql/postgres/01_schema.sql has the same tables and columns.
--
-- Types covered: SMALLINT/INT/BIGINT, DECIMAL(12,2), FLOAT and DOUBLE,
-- BOOLEAN, VARCHAR/CHAR/TEXT, DATE, TIME, DATETIME(6), TIMESTAMP(6), JSON,
-- BIT(8), VARBINARY and BLOB. Where PostgreSQL has timestamptz MariaDB has
-- TIMESTAMP (stored in UTC); where it has json/jsonb MariaDB has JSON; where
-- it has bytea MariaDB has VARBINARY or BLOB. MariaDB cannot store NaN or
-- infinities, so those rows hold NULL here.

SET NAMES utf8mb4;
SET foreign_key_checks = 0;

DROP TABLE IF EXISTS events, order_items, orders, products, customers;

SET foreign_key_checks = 1;

CREATE TABLE customers (
    id             INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email          VARCHAR(254) NOT NULL UNIQUE,
    full_name      TEXT NOT NULL,
    country        CHAR(2),
    note           TEXT,
    is_active      BOOLEAN NOT NULL DEFAULT TRUE,
    loyalty_level  SMALLINT,
    birth_date     DATE,
    created_at     TIMESTAMP(6) NOT NULL,
    last_login     DATETIME(6),
    preferred_time TIME
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE products (
    id          INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sku         VARCHAR(32) NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT,
    price       DECIMAL(12,2) NOT NULL,
    weight_kg   FLOAT,
    rating      DOUBLE,
    stock       SMALLINT NOT NULL DEFAULT 0,
    available   BOOLEAN NOT NULL DEFAULT TRUE,
    flags       BIT(8),
    barcode     VARBINARY(16),
    thumbnail   BLOB,
    attributes  JSON,
    released_on DATE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE orders (
    id               BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id      INT NOT NULL,
    status           VARCHAR(16) NOT NULL
                     CHECK (status IN ('pending', 'paid', 'shipped', 'delivered',
                                       'cancelled', 'refunded')),
    placed_at        DATETIME(6) NOT NULL,
    paid_at          TIMESTAMP(6) NULL DEFAULT NULL,
    ship_by          DATE,
    delivery_slot    TIME,
    total            DECIMAL(12,2) NOT NULL,
    discount         FLOAT,
    is_gift          BOOLEAN NOT NULL DEFAULT FALSE,
    gift_message     TEXT,
    shipping_address TEXT,
    KEY orders_customer_id_idx (customer_id),
    KEY orders_placed_at_idx (placed_at),
    CONSTRAINT orders_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE order_items (
    order_id   BIGINT NOT NULL,
    line_no    SMALLINT NOT NULL,
    product_id INT NOT NULL,
    quantity   INT NOT NULL CHECK (quantity > 0),
    unit_price DECIMAL(12,2) NOT NULL,
    weight_kg  DOUBLE,
    PRIMARY KEY (order_id, line_no),
    KEY order_items_product_id_idx (product_id),
    CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES orders (id) ON DELETE CASCADE,
    CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE events (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id INT,
    kind        VARCHAR(32) NOT NULL,
    payload     JSON,
    props       JSON,
    score       DOUBLE,
    raw         BLOB,
    occurred_at TIMESTAMP(6) NOT NULL,
    KEY events_customer_id_idx (customer_id),
    CONSTRAINT events_customer_id_fkey FOREIGN KEY (customer_id)
        REFERENCES customers (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
