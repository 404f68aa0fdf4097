-- The accident, on production only, then the application keeps writing.
-- After this, production lacks every EUR row of the seed, has one row changed after the
-- accident (id 2: a restore must not overwrite it) and rows created after the accident
-- (including new EUR rows, which a restore must keep).
DELETE FROM `@TABLE@` WHERE currency = 'EUR';
UPDATE `@TABLE@` SET description = 'changed after the accident', amount = 1.0000 WHERE id = 2;
INSERT INTO `@TABLE@`
SELECT @ROWS@ + seq, 42, IF(seq % 2 = 0, 'EUR', 'USD'), seq * 10.5, CONCAT('written after the accident ', seq, ' 🚒'),
       NOW(6), NULL, UNHEX('00ff00ff'), NULL
FROM seq_1_to_5;
