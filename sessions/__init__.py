"""FIX sessions: the only package that imports quickfix. The gateway's client and venue applications, the codec between
FIX text and the order vocabulary (codec/), quickfix settings and stores, the journal's log capture, the FIX client
of `fixgw client`, the drop-copy acceptor, and the venue simulator's FIX side (simulator/)."""
