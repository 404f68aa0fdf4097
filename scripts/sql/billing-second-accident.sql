-- The second accident, on production's `shop.billing` only (the tests' own tables get the first
-- alone): an UPDATE without the right WHERE overwrites a column on many rows, a second or more
-- after the DELETE. The rows are all still there, so only their before-images in the binlog (or
-- the restored copy) hold the values it overwrote: what a binlog rewind of updates must put back.
UPDATE `@TABLE@` SET amount = 0.0000, description = 'overwritten by the second accident'
WHERE currency = 'USD' AND id % 5 = 0;
