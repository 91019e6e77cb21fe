"""Statistics and analyses over the warehouse: pure functions, importing only lakepulse.core."""
