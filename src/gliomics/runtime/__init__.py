"""What training, inference and the slice benchmark share at run time: the machine (cores, CPU model, devices,
precision, thread and allocator settings) and checkpoint files."""
