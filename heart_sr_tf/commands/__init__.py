"""What each command of the command line does, one function per command: the policy between the options a user
gives and the packages that do the work (which data, which run, which model and backend, where results go).
``heart_sr_tf/cli`` parses options and calls these; nothing here parses, and nothing below imports this package."""
