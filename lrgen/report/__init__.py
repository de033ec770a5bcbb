"""What a person looks at after a run: a scored VCF summed up (``lrgen stats``: :mod:`.stats`, :mod:`.table`) and a
track with the variants' scores along it (``lrgen plot``: :mod:`.plot`, :mod:`.figure`).

Nothing here loads a model or torch, so both commands start in well under a second (matplotlib aside).
"""
