// Package report renders the JSON report of `qpipe run --json` as one
// self-contained HTML page: inline CSS and SVG charts, no scripts, no
// network. The page is a pure function of the JSON: the same report gives
// the same bytes, and every number of the JSON is on the page (shown
// rounded for reading, exact in the element's title).
//
// Per output it shows the size by role and scheme against the float input,
// each transformer block's weight SQNR by role (and the measured
// sensitivity when a budget measured it), the evaluation metrics when
// present, every tensor's error, and, when several outputs of a job were
// evaluated or a budget compared its mix with the uniform presets, size
// against KL divergence. Fields this package does not know (added to the
// run report later) are listed with the object that carries them, so
// nothing of the JSON is lost.
package report
