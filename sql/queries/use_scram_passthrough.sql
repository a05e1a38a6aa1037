select bgtask.use_scram_passthrough() as message
