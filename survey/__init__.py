"""Survey cutouts and catalogs: readers for real layouts, the native HDF5 layout, the simulator.

`survey` imports nothing else of skysift; every other package may import it.
"""
