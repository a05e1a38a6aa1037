select bgtask.purge($1::interval, $2::integer) as purged
