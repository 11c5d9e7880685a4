package netfilter

import (
	"errors"
	"slices"
	"testing"
)

// recPart records its commits in a shared log.
type recPart struct {
	name string
	log  *[]string
	err  error
}

func (p *recPart) Commit() error { *p.log = append(*p.log, p.name); return p.err }

// Parts commit once each, in the order they were made, every one even
// after another failed; an error found while queueing commits nothing.
func TestTxn(t *testing.T) {
	var log []string
	var tx Txn
	a := tx.Part("a", func() Part { return &recPart{name: "a", log: &log, err: errors.New("refused")} })
	b := tx.Part("b", func() Part { return &recPart{name: "b", log: &log} })
	if tx.Part("a", func() Part { t.Fatal("a second part for key a"); return nil }) != a || a == b {
		t.Fatal("Part does not return the key's part")
	}
	if err := tx.Commit(); err == nil || err.Error() != "refused" || !slices.Equal(log, []string{"a", "b"}) {
		t.Errorf("Commit: %v, commits %v; want the refusal after a then b", err, log)
	}
	if err := tx.Commit(); err != nil || len(log) != 2 || !tx.Empty() {
		t.Errorf("a second Commit: %v, commits %v; want nothing", err, log)
	}
	log = nil
	err := Do(func(tx *Txn) {
		tx.Part("a", func() Part { return &recPart{name: "a", log: &log} })
		tx.Fail(errors.New("unsupported key"))
	})
	if err == nil || len(log) != 0 {
		t.Errorf("Do with a queueing error: %v, commits %v; want the error and none", err, log)
	}
}
