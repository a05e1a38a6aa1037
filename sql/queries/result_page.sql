-- A template: %COLUMNS% and %TABLE% are identifiers that the client inserts, escaped, after
-- bgtask.result_table() has checked the table's owner. _row runs 1, 2, 3…, so a page is a range of it.
select _row%COLUMNS% from %TABLE% where _row > $1::bigint and _row <= $1::bigint + $2::integer order by _row
