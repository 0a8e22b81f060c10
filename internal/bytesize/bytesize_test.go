package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", -5: "-5 B", 1024: "1.0 KiB", 916256: "895 KiB",
		1 << 20: "1.0 MiB", 1677722: "1.6 MiB", 8 << 30: "8.0 GiB", 150 << 30: "150 GiB", -2048: "-2.0 KiB",
		1 << 62: "4.0 EiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}
