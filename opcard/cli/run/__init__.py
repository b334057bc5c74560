"""What the commands :mod:`opcard.cli.fast` can run without click do: one module per command
module of :mod:`opcard.cli`, which declares the command (options, help) and calls it here."""
