"""Exit statuses of `gateway` and of its child processes, which the supervisor and deploy tooling read."""

EXIT_CONFIG_ERROR = 2  # the configuration is invalid; the message names the key
EXIT_BOOT_FAILURE = 3  # a listener cannot be bound, or a child cannot boot (port taken, broken code on disk)
