-- A template, as result_page.sql.
copy (select %COLUMNS% from %TABLE% order by _row) to stdout with (format csv, header)
