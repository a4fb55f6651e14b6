-- Sample rows for the shop schema (PostgreSQL); see 01_schema.sql.
--
-- Hand-picked and deterministic. sql/mysql/02_data.sql holds the same logical
-- rows; they differ only where MariaDB cannot follow: NaN and infinities are
-- NULL there, timestamptz values are written in UTC, and products.flags is a
-- BIT(8) literal. The text columns carry the awkward cases on purpose:
-- accents, CJK, RTL and emoji; " and '; commas; LF and CR; tabs; backslashes;
-- a lone '\N'; the word 'NULL'; empty strings beside SQL NULLs.

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;

BEGIN;

INSERT INTO customers (id, email, full_name, country, note, is_active, loyalty_level, birth_date, created_at, last_login, preferred_time) VALUES
  (1, 'ana.silva@example.com', 'Ana Silva', 'PT', 'Prefers morning delivery', TRUE, 2, '1988-04-12', '2023-01-05 09:12:00+00:00', '2024-05-01 08:00:00', '08:30:00'),
  (2, 'jose.muller@example.de', 'José Müller', 'DE', 'Leave at the door, please', TRUE, 3, '1975-11-30', '2023-01-17 14:03:27+01:00', '2024-05-02 19:45:10.25', '18:00:00'),
  (3, 'yamada.taro@example.jp', '山田 太郎', 'JP', '配達は午後にお願いします', TRUE, 1, '1992-07-07', '2023-02-01 00:00:00+09:00', NULL, '14:00:00'),
  (4, 'zoe.obrien@example.ie', 'Zoë "Zee" O''Brien', 'IE', 'Said: "ring twice", then knock', FALSE, 0, NULL, '2023-02-14 23:59:59+00:00', '2023-03-01 12:00:00', NULL),
  (5, 'li.wei@example.cn', '李伟', 'CN', '', TRUE, 1, '2000-02-29', '2023-03-03 03:03:03.303+08:00', '2024-04-30 23:59:59.999999', '09:15:30'),
  (6, 'ngozi@example.ng', 'Ngozi Okonkwo-Adeyemi', 'NG', NULL, TRUE, 2, '1969-12-31', '2023-03-20 10:00:00+01:00', NULL, NULL),
  (7, 'francois@example.fr', 'François Lefèvre', 'FR', E'Line one\nLine two', TRUE, 4, '1981-06-21', '2023-04-01 08:30:00+02:00', '2024-05-03 07:05:00', '07:00:00'),
  (8, 'crlf@example.com', 'Carrie Return', 'US', E'ends with CRLF\r\n', TRUE, 0, '1999-12-31', '2023-04-15 17:45:00-07:00', '2024-01-01 00:00:00', '23:59:59'),
  (9, 'back.slash@example.co.uk', 'Bea Backslash', 'GB', E'Files in C:\\Users\\bea\\orders\\', TRUE, 1, '1990-01-01', '2023-05-05 05:05:05+00:00', '2024-02-29 12:34:56', '12:00:00'),
  (10, 'tabby@example.com', 'Tabitha Tab', 'US', E'col1\tcol2\tcol3', TRUE, 2, '1985-03-15', '2023-05-18 22:10:00-04:00', NULL, '20:30:00'),
  (11, 'emoji@example.com.br', 'Emoji Fan 😀', 'BR', 'Loves 🎉 and ☕, hates 🐛', TRUE, 5, '2001-09-09', '2023-06-01 12:00:00-03:00', '2024-05-04 10:10:10', '10:00:00'),
  (12, 'anna.kowalska@example.pl', 'Anna Kowalska', 'PL', 'Zażółć gęślą jaźń', TRUE, 1, '1979-08-08', '2023-06-11 06:00:00+02:00', '2024-03-15 15:00:00', NULL),
  (13, 'dmitri@example.ru', 'Дмитрий Иванов', 'RU', 'Позвонить за час', FALSE, 0, '1965-05-09', '2023-07-07 07:07:07+03:00', NULL, '16:45:00'),
  (14, 'kim.minji@example.kr', '김민지', 'KR', 'comma, separated, note', TRUE, 3, '1995-10-03', '2023-07-21 13:30:00+09:00', '2024-05-05 21:00:00', '21:00:00'),
  (15, 'ahmed.hassan@example.eg', 'أحمد حسن', 'EG', NULL, TRUE, 1, NULL, '2023-08-02 09:00:00+02:00', NULL, NULL),
  (16, 'sven@example.se', 'Sven Ångström', 'SE', '"quoted start and no end', TRUE, 2, '1972-12-24', '2023-08-30 16:20:00+02:00', '2024-04-01 09:09:09', '11:11:11'),
  (17, 'priya@example.in', 'Priya Raghunathan', 'IN', 'semi;colon | pipe & ampersand <tag>', TRUE, 4, '1987-11-14', '2023-09-12 11:45:00+05:30', '2024-05-06 06:30:00', '06:30:00'),
  (18, 'null.literal@example.com', 'NULL', 'US', E'\\N', TRUE, 0, '1970-01-01', '2023-10-01 00:00:00+00:00', '2023-10-01 00:00:01', '00:00:00'),
  (19, 'spaces@example.com', '  padded name  ', NULL, '   ', FALSE, NULL, '2004-04-04', '2023-11-11 11:11:11.111111+00:00', NULL, NULL),
  (20, 'omega@example.gr', 'Ωμέγα Τελευταίος', 'GR', E'multi\nline,\n"quoted"\nand \\ slash\tand tab', TRUE, 32767, '1999-01-31', '2023-12-31 23:30:00+02:00', '2024-05-07 18:18:18', '18:18:18');

INSERT INTO products (id, sku, name, description, price, weight_kg, rating, stock, available, flags, barcode, thumbnail, attributes, released_on) VALUES
  (1, 'TEE-RED-M', 'T-shirt, red, M', E'100% cotton.\nMachine wash at 30°C.', 19.99, 0.25, 4.5, 120, TRUE, 1, '\x04006381333931', '\x89504e470d0a1a0a', '{"color": "red", "size": "M", "sizes": ["S", "M", "L"]}', '2022-03-01'),
  (2, 'MUG-CAT', 'Mug "Cat Person"', 'Holds 350 ml; dishwasher-safe', 12.50, 0.4, 4.25, 45, TRUE, 3, '\x0123456789abcdef', '\xffd8ffe000104a464946', '{"capacity_ml": 350, "microwave": true}', '2021-11-15'),
  (3, 'BOOK-KANJI', '漢字の本', '日本語の教科書、第2版', 34.00, 1.2, 4.875, 12, TRUE, 5, '\x9784000000000000', NULL, '{"lang": "ja", "pages": 320, "title": "漢字の本"}', '2020-04-01'),
  (4, 'GIFT-CARD', 'Gift card', 'Digital code, sent by e-mail', 50.00, 0.0, 'NaN', 32767, TRUE, 128, '\x', NULL, '{}', NULL),
  (5, 'SAMPLE-FREE', 'Free sample', '', 0.00, 0.01, NULL, 0, FALSE, 0, NULL, NULL, '[]', '2023-01-01'),
  (6, 'SOFA-XL', 'Sofa "Comfort", XL', E'Three seats\r\nAssembly required', 1299.00, 85.5, 3.9, 2, TRUE, 255, '\x00000000000000000000000000000000', '\x00', '{"seats": 3, "dims_cm": {"w": 230, "d": 95, "h": 80}, "fabric": null}', '2019-09-30'),
  (7, 'PEN-BLUE', 'Ballpoint pen, blue', 'Pack of 10', 3.49, 0.08, 4.0, 500, TRUE, 16, '\x1234', '\x00ff0a0d2c225c09', '{"pack": 10, "ink": "blue"}', '2018-01-15'),
  (8, 'CAFE-BEANS', 'Café beans ☕ 1 kg', 'Single origin; roasted in Lisbon', 24.90, 1.0, 'Infinity', 60, TRUE, 33, '\x05601234567890', NULL, '{"origin": "Brasil", "roast": "médio", "notes": ["cacau", "avelã"]}', '2023-06-15'),
  (9, 'LAMP-DESK', 'Desk lamp', E'LED, 3 brightness levels\n- warm\n- neutral\n- cold', 45.00, 1.75, 4.6, 30, TRUE, 65, '\xdeadbeef', '\x474946383961010001000000', '{"watts": 7.5, "colors": ["warm", "neutral", "cold"]}', '2022-10-10'),
  (10, 'RUG-PERSIAN', 'Persian rug 2×3 m', 'Hand-knotted wool', 9999999999.99, 25.0, 5.0, 1, TRUE, 170, '\xffffffff', NULL, '{"price_note": "the most expensive item", "big": 12345678901234567890}', '1999-12-31'),
  (11, 'VOUCHER-5', 'Voucher -5 €', 'Negative price line for refunds', -5.00, NULL, NULL, -1, FALSE, 2, NULL, NULL, '{"kind": "voucher", "amount": -5.00}', NULL),
  (12, 'SOCKS-3P', 'Socks, 3 pairs', 'Sizes 39–42', 9.95, 0.15, 3.5, 200, TRUE, 4, '\x0000', NULL, '{"pairs": 3, "sizes": "39–42"}', '2021-02-02'),
  (13, 'BACKSLASH-POSTER', E'Poster \\ "Escapes"', E'Prints C:\\temp\\ and \\n literally', 15.00, 0.3, 4.1, 25, TRUE, 8, '\x5c6e', '\x5c5c', E'{"path": "C:\\\\temp\\\\", "quote": "say \\"hi\\"", "newline": "a\\nb"}', '2022-12-12'),
  (14, 'TAB-ORGANIZER', E'Tab\torganizer', E'Has\ttabs\tinside', 7.25, 0.5, 2.75, 80, TRUE, 6, '\x09', NULL, '{"tabs": 3}', '2020-08-08'),
  (15, 'EMOJI-STICKERS', 'Sticker pack 🎉🐛🦄', '50 stickers, waterproof 💧', 4.99, 0.02, 4.99, 300, TRUE, 96, NULL, NULL, '{"emoji": "🦄", "count": 50}', '2023-05-04'),
  (16, 'KEYBOARD-DE', 'Tastatur (QWERTZ) – Deutsch', 'Mit Umlauten: ä ö ü ß', 59.00, 0.9, 4.3, 15, TRUE, 24, '\xabcdef', NULL, '{"layout": "de-DE", "keys": 105, "wireless": false}', '2021-07-19'),
  (17, 'HEADPHONES', 'Headphones, over-ear', NULL, 149.95, 0.32, 4.45, 40, TRUE, 51, '\x0102030405060708090a0b0c0d0e0f10', '\x000102', '{"anc": true, "battery_h": 30, "codecs": ["SBC", "AAC"]}', '2023-09-01'),
  (18, 'PLANT-POT', 'Plant pot, ø 20 cm', 'Terracotta', 11.00, 2.2, 3.25, 0, FALSE, 7, NULL, NULL, NULL, '2020-03-20'),
  (19, 'USB-CABLE', 'USB-C cable, 1 m', '"Fast" charging, 60 W', 8.99, 0.05, 4.15, 250, TRUE, 129, '\xc0ffee', NULL, '{"watts": 60, "length_m": 1.0}', '2022-06-06'),
  (20, 'CHAIR-OFFICE', 'Office chair', 'Adjustable height; 5-year warranty', 249.00, 14.8, 4.05, 9, TRUE, 240, '\x0f0f', '\xffd8ffdb', '{"warranty_years": 5, "adjustable": ["height", "armrests"]}', '2021-01-11');

INSERT INTO orders (id, customer_id, status, placed_at, paid_at, ship_by, delivery_slot, total, discount, is_gift, gift_message, shipping_address) VALUES
  (1, 1, 'delivered', '2024-01-02 10:15:00', '2024-01-02 10:16:30+00:00', '2024-01-05', '09:00:00', 43.47, 0.0, FALSE, NULL, E'Rua Augusta 10\n1100-053 Lisboa\nPortugal'),
  (2, 2, 'delivered', '2024-01-03 18:00:00.5', '2024-01-03 18:02:00+01:00', '2024-01-06', '14:00:00', 53.10, 0.1, FALSE, NULL, 'Hauptstraße 5, 10115 Berlin'),
  (3, 3, 'shipped', '2024-01-10 08:45:12', '2024-01-10 17:45:12+09:00', '2024-01-14', NULL, 43.98, NULL, TRUE, 'お誕生日おめでとう！🎂', '東京都千代田区丸の内1-1-1'),
  (4, 4, 'cancelled', '2024-01-11 23:59:59.999999', NULL, NULL, NULL, 1299.00, NULL, FALSE, NULL, E'12 Main St., Apt "B"\nDublin'),
  (5, 5, 'paid', '2024-01-20 02:30:00', '2024-01-20 10:31:00+08:00', '2024-01-25', '18:30:00', 56.95, 0.05, FALSE, NULL, '北京市朝阳区建国路88号'),
  (6, 7, 'delivered', '2024-02-01 12:00:00', '2024-02-01 13:00:00+01:00', '2024-02-03', '12:00:00', 94.80, 0.0, TRUE, E'Joyeux anniversaire,\nmaman !', E'3 rue de l''Église\r\n75004 Paris'),
  (7, 8, 'refunded', '2024-02-05 09:00:00', '2024-02-05 01:00:00-08:00', '2024-02-09', NULL, 149.95, 0.0, FALSE, NULL, '1 Infinite Loop, Cupertino, CA'),
  (8, 9, 'delivered', '2024-02-10 16:20:00', '2024-02-10 16:21:00+00:00', '2024-02-13', '16:00:00', 25.50, 0.15, FALSE, NULL, E'Flat 2\\B, 221 Baker St, London'),
  (9, 10, 'pending', '2024-02-14 14:14:14', NULL, NULL, NULL, 42.96, NULL, TRUE, E'Roses are red,\tviolets are blue', E'100\tTab Ave\tSpringfield'),
  (10, 11, 'paid', '2024-02-29 23:00:00', '2024-02-29 20:05:00-03:00', '2024-03-04', '10:30:00', 54.30, 0.2, FALSE, NULL, 'Av. Paulista, 1000 – São Paulo 🇧🇷'),
  (11, 12, 'shipped', '2024-03-01 07:30:00', '2024-03-01 08:31:00+01:00', '2024-03-04', '08:00:00', 249.00, 0.0, FALSE, '', 'ul. Długa 1, 00-001 Warszawa'),
  (12, 14, 'delivered', '2024-03-05 11:11:11', '2024-03-05 20:11:11+09:00', '2024-03-08', '19:00:00', 158.94, 0.0, FALSE, NULL, '서울특별시 중구 세종대로 110'),
  (13, 16, 'delivered', '2024-03-09 13:00:00', '2024-03-09 14:00:00+01:00', '2024-03-12', '13:00:00', 9999999999.99, 0.0, FALSE, NULL, 'Drottninggatan 1, Stockholm'),
  (14, 17, 'paid', '2024-03-15 05:30:00', '2024-03-15 11:00:00+05:30', '2024-03-20', '06:00:00', 42.64, 0.25, TRUE, 'Happy Holi! "Colours" & joy', 'MG Road, Bengaluru 560001'),
  (15, 18, 'pending', '2024-03-20 00:00:00', NULL, NULL, NULL, 100.00, NULL, FALSE, 'NULL', 'NULL'),
  (16, 20, 'shipped', '2024-03-25 18:45:00', '2024-03-25 20:46:00+02:00', '2024-03-28', '17:00:00', 119.85, 0.0, FALSE, NULL, 'Οδός Ερμού 1, Αθήνα'),
  (17, 1, 'delivered', '2024-04-01 09:00:00', '2024-04-01 09:01:00+01:00', '2024-04-04', '09:30:00', 20.90, 0.05, FALSE, NULL, E'Rua Augusta 10\n1100-053 Lisboa\nPortugal'),
  (18, 2, 'paid', '2024-04-02 20:20:20', '2024-04-02 22:20:20+02:00', '2024-04-06', '20:00:00', 1294.00, 0.0, TRUE, E'Alles Gute\r\nzum Geburtstag', 'Hauptstraße 5, 10115 Berlin'),
  (19, 3, 'delivered', '2024-04-05 06:06:06', '2024-04-05 15:06:06+09:00', '2024-04-09', '15:00:00', 68.00, 0.0, FALSE, NULL, '東京都千代田区丸の内1-1-1'),
  (20, 5, 'cancelled', '2024-04-10 10:10:10', NULL, NULL, NULL, 67.99, NULL, FALSE, NULL, '北京市朝阳区建国路88号'),
  (21, 7, 'shipped', '2024-04-12 12:12:12.120000', '2024-04-12 14:12:40+02:00', '2024-04-15', '11:00:00', 448.20, 0.1, FALSE, NULL, E'3 rue de l''Église\r\n75004 Paris'),
  (22, 9, 'paid', '2024-04-15 15:15:15', '2024-04-15 16:15:15+01:00', '2024-04-18', '15:30:00', 42.24, 0.0, FALSE, NULL, E'Flat 2\\B, 221 Baker St, London'),
  (23, 11, 'delivered', '2024-04-20 19:00:00', '2024-04-20 16:00:30-03:00', '2024-04-24', '19:30:00', 14.97, 0.0, TRUE, 'Parabéns! 🎉🎉', 'Av. Paulista, 1000 – São Paulo 🇧🇷'),
  (24, 12, 'refunded', '2024-04-22 08:00:00', '2024-04-22 10:00:00+02:00', '2024-04-25', NULL, 25.00, 0.0, FALSE, NULL, 'ul. Długa 1, 00-001 Warszawa'),
  (25, 14, 'pending', '2024-04-25 21:21:21', NULL, NULL, NULL, 224.65, NULL, FALSE, NULL, '서울특별시 중구 세종대로 110'),
  (26, 16, 'delivered', '2024-04-28 10:00:00', '2024-04-28 12:00:00+02:00', '2024-05-01', '10:00:00', 19.90, 0.0, FALSE, NULL, 'Drottninggatan 1, Stockholm'),
  (27, 17, 'shipped', '2024-05-01 04:00:00', '2024-05-01 09:30:00+05:30', '2024-05-06', '09:00:00', 63.33, 0.12, FALSE, NULL, 'MG Road, Bengaluru 560001'),
  (28, 18, 'paid', '2024-05-02 00:00:01', '2024-05-02 00:00:02+00:00', '2024-05-06', '00:30:00', 3.49, 0.0, FALSE, NULL, 'NULL'),
  (29, 20, 'delivered', '2024-05-03 17:17:17', '2024-05-03 19:17:17+03:00', '2024-05-07', '17:00:00', 106.47, 0.0, FALSE, NULL, 'Οδός Ερμού 1, Αθήνα'),
  (30, 11, 'pending', '2024-05-04 22:22:22.222222', NULL, NULL, NULL, 50.00, NULL, FALSE, NULL, 'Av. Paulista, 1000 – São Paulo 🇧🇷');

INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price, weight_kg) VALUES
  (1, 1, 1, 2, 19.99, 0.5),
  (1, 2, 7, 1, 3.49, 0.08),
  (2, 1, 16, 1, 59.00, 0.9),
  (3, 1, 3, 1, 34.00, 1.2),
  (3, 2, 15, 2, 4.99, 0.04),
  (4, 1, 6, 1, 1299.00, 85.5),
  (5, 1, 2, 4, 12.50, 1.6),
  (5, 2, 12, 1, 9.95, 0.15),
  (6, 1, 8, 2, 24.90, 2.0),
  (6, 2, 9, 1, 45.00, 1.75),
  (7, 1, 17, 1, 149.95, 0.32),
  (8, 1, 13, 2, 15.00, 0.6),
  (8, 2, 5, 1, 0.00, 0.01),
  (9, 1, 1, 1, 19.99, 0.25),
  (9, 2, 2, 1, 12.50, 0.4),
  (9, 3, 7, 3, 3.49, 0.24),
  (10, 1, 15, 10, 4.99, 0.2),
  (10, 2, 19, 2, 8.99, 0.1),
  (11, 1, 20, 1, 249.00, 14.8),
  (12, 1, 17, 1, 149.95, 0.32),
  (12, 2, 19, 1, 8.99, 0.05),
  (13, 1, 10, 1, 9999999999.99, 25.0),
  (14, 1, 8, 1, 24.90, 1.0),
  (14, 2, 14, 2, 7.25, 1.0),
  (14, 3, 7, 5, 3.49, 0.4),
  (15, 1, 4, 2, 50.00, 0.0),
  (16, 1, 9, 2, 45.00, 3.5),
  (16, 2, 12, 3, 9.95, 0.45),
  (17, 1, 18, 2, 11.00, 4.4),
  (17, 2, 5, 1, 0.00, 0.01),
  (18, 1, 11, 1, -5.00, NULL),
  (18, 2, 6, 1, 1299.00, 85.5),
  (19, 1, 3, 2, 34.00, 2.4),
  (20, 1, 16, 1, 59.00, 0.9),
  (20, 2, 19, 1, 8.99, 0.05),
  (21, 1, 20, 2, 249.00, 29.6),
  (22, 1, 13, 1, 15.00, 0.3),
  (22, 2, 14, 1, 7.25, 0.5),
  (22, 3, 1, 1, 19.99, 0.25),
  (23, 1, 15, 3, 4.99, 0.06),
  (24, 1, 2, 2, 12.50, 0.8),
  (25, 1, 8, 3, 24.90, 3.0),
  (25, 2, 17, 1, 149.95, 0.32),
  (26, 1, 12, 2, 9.95, 0.3),
  (27, 1, 9, 1, 45.00, 1.75),
  (27, 2, 19, 3, 8.99, 0.15),
  (28, 1, 7, 1, 3.49, 0.08),
  (29, 1, 1, 3, 19.99, 0.75),
  (29, 2, 2, 1, 12.50, 0.4),
  (29, 3, 3, 1, 34.00, 1.2),
  (30, 1, 4, 1, 50.00, 0.0);

INSERT INTO events (id, customer_id, kind, payload, props, score, raw, occurred_at) VALUES
  (1, 1, 'signup', '{"source": "ads", "campaign": "winter-2023"}', '{"ab": "B", "beta": false}', 1.0, NULL, '2023-01-05 09:12:00+00:00'),
  (2, 2, 'login', '{"ip": "127.0.0.1", "ua": "Mozilla/5.0 (X11; Linux x86_64)"}', '{"mfa": true}', 0.5, '\x7f000001', '2024-05-02 19:45:10.25+01:00'),
  (3, 3, 'search', '{"q": "漢字 本", "results": 3}', '{"lang": "ja"}', 0.125, NULL, '2024-01-09 21:00:00+09:00'),
  (4, 4, 'review', E'{"stars": 1, "text": "Arrived \\"broken\\", sent back"}', '{"verified": false}', -1.0, NULL, '2024-01-12 08:00:00+00:00'),
  (5, NULL, 'anonymous_visit', '{"path": "/products?id=6&ref=home", "referrer": null}', NULL, 'NaN', NULL, '2024-01-15 12:00:00+00:00'),
  (6, 7, 'cart_add', E'{  "sku" : "CAFE-BEANS",\n  "qty" : 2  }', '{"qty": 2, "sku": "CAFE-BEANS"}', 2.0, NULL, '2024-02-01 11:58:00+01:00'),
  (7, 11, 'share', '{"network": "🐦", "text": "Olha só 😍"}', '{"emoji": true}', 'Infinity', NULL, '2024-02-29 22:00:00-03:00'),
  (8, 9, 'export', E'{"path": "C:\\\\exports\\\\orders.csv", "rows": 2}', '{"format": "csv"}', 0.75, '\x5c5c2c22', '2024-02-10 16:30:00+00:00'),
  (9, 10, 'support_ticket', E'{"subject": "Tabs\\tin\\tsubject", "body": "line1\\nline2"}', '{"priority": "low"}', '-Infinity', NULL, '2024-02-15 09:00:00-05:00'),
  (10, 12, 'payment', '{"amount": 249.00, "currency": "PLN", "exact": 12345678901234567890.123}', '{"amount": 249.00}', 1e-300, '\x00010203', '2024-03-01 08:31:00+01:00'),
  (11, 14, 'login', '{"ip": "10.0.0.1"}', '{"mfa": false}', 0.3333333333333333, NULL, '2024-03-05 20:00:00+09:00'),
  (12, 17, 'coupon', '{"code": "HOLI25", "discount": 0.25}', '{"nested": {"a": [1, 2, {"b": null}]}}', 15000000000.0, NULL, '2024-03-15 10:59:00+05:30'),
  (13, 18, 'noop', 'null', '"just a string"', NULL, '\x', '2024-03-20 00:00:00+00:00'),
  (14, 20, 'newsletter', '{"subscribed": true, "topics": []}', '[1, "two", 3.0, true, null]', 0.1, NULL, '2024-03-25 18:00:00+02:00'),
  (15, 5, 'cancel', '{"order": 20, "reason": "changed my mind, sorry"}', '{"order": 20}', -0.0, NULL, '2024-04-10 18:15:00+08:00'),
  (16, NULL, 'crawler', '{"ua": "Bot/1.0 (+https://example.com/bot)", "blocked": true}', '{}', 0.0, '\xff', '2024-04-30 23:59:59.999999+00:00');

-- The identity columns carry on after the hand-picked ids.
SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers));
SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products));
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events));

COMMIT;

ANALYZE customers, products, orders, order_items, events;
