"""How training works: photos and crops (``data``), tar shards, losses, the trainer's loop, distributed runs,
checkpoints and the named presets."""
