-- A template, as result_page.sql. One JSON object per line; CSV with delimiter and quote characters that JSON
-- text never contains (it escapes control characters) copies the lines unchanged.
copy (select row_to_json(r) from (select %COLUMNS% from %TABLE% order by _row) r) to stdout with (format csv, delimiter E'\x02', quote E'\x01')
