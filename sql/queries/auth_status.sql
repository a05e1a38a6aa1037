select bgtask.auth_status() as status
