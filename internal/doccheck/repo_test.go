package doccheck

import "testing"

// TestRepository fails on every citation in the repository that points to
// a document or section that does not exist.
func TestRepository(t *testing.T) {
	problems, err := Check("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
