"""What the jobs share: processes and devices, atomic files, resumable partial outputs, progress bars, LR schedules."""
