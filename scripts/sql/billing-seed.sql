-- The sandbox's `billing` table: every kind of value the copy has to carry exactly.
-- @TABLE@ and @ROWS@ are substituted by scripts/sandbox and by the integration tests.
DROP TABLE IF EXISTS `@TABLE@`;
CREATE TABLE `@TABLE@` (
  id BIGINT NOT NULL,
  customer_id BIGINT UNSIGNED NOT NULL,
  currency CHAR(3) NOT NULL,
  amount DECIMAL(14,4) NOT NULL,
  description VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  created_at DATETIME(6) NOT NULL,
  paid_at DATETIME(6) NULL,
  payload VARBINARY(64) NULL,
  attachment BLOB NULL,
  PRIMARY KEY (id),
  KEY idx_currency (currency)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT INTO `@TABLE@`
SELECT seq,
       seq % 5003,
       ELT(1 + seq % 4, 'USD', 'EUR', 'GBP', 'JPY'),
       ROUND(seq * 1.3711, 4) - 500,
       IF(seq % 11 = 0, NULL, CONCAT('invoice ', seq, ' café ✓ 💶 ', REPEAT('ü', seq % 17))),
       TIMESTAMP'2025-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL (seq * 7919) % 1000000 MICROSECOND,
       IF(seq % 3 = 0, NULL, TIMESTAMP'2025-02-01 00:00:00' + INTERVAL seq SECOND),
       IF(seq % 13 = 0, NULL, UNHEX(SHA2(seq, 256))),
       IF(seq % 5 = 0, NULL, CONCAT(CHAR(0), UNHEX(MD5(seq)), CHAR(255), CHAR(10), CHAR(0)))
FROM seq_1_to_@ROWS@;
