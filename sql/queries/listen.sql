listen bgtask
