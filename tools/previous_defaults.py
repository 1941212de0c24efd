"""
Tracker defaults before docs/robust-tracking.md chose today's, which older runs were made with.

The robustness page measures against them and the re-detection page reads runs that did not
record them; both take them from here.
"""

# The lost state: a miss under this score, reported after this many misses in a row.
SCORE_THRESHOLD = 0.25
LOST_PATIENCE = 5
# Crop width while searching for a lost target, in box sizes (``lost_search_factor``).
LOST_SEARCH_FACTOR = 6.0
# Confident frames replacing the template (``template_update``).
TEMPLATE_UPDATE = False
