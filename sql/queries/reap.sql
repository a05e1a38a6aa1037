select bgtask.reap() as lost
