select bgtask.set_password($1::text) as message
