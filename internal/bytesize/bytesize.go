// Package bytesize formats byte counts for reading, one way for the
// command line, logs, budget notes and the HTML report: binary units with
// one decimal below 100 of the unit ("894.8 KiB" is "895 KiB", "1.6 MiB").
// Sizes are parsed by config.ParseSize.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
)

// Format writes n bytes as "512 B", "1.6 MiB" or "895 KiB".
func Format(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for math.Abs(v) >= unit && exp < 6 {
		v /= unit
		exp++
	}
	prec := 1
	if math.Abs(v) >= 100 {
		prec = 0
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + " " + string("KMGTPE"[exp-1]) + "iB"
}
