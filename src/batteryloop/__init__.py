"""batteryloop: the closed loop of EV traction batteries.

The packages follow the battery's road: registry -> cycling -> health -> grading -> passport ->
recycling -> carbon, with factory feeding carbon. ``store`` is the floor they all stand on; ``api``,
``cli`` and ``web`` are faces over the same services.
"""

__version__ = "0.1.0"
