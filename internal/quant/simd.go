package quant

import "os"

// simdAllowed is false when the environment sets QPIPE_SIMD=off: every
// kernel then runs its scalar Go form. The output is the same bytes either
// way; the switch is there to check that (CI runs the tests both ways) and
// to take the vector code out of the picture when chasing a problem.
var simdAllowed = os.Getenv("QPIPE_SIMD") != "off"
