package netfilter

import (
	"errors"
	"fmt"
	"io"
)

// Txn is one change of the host's netfilter state. A caller builds it by
// asking backends to add or delete (they only queue), then commits it
// once; there is no hidden mode and no caller code runs twice. Each
// backend keeps its share in a Part:
//   - nftables: one netlink batch, which the kernel applies atomically;
//   - iptables: its steps in order, each one iptables-restore transaction.
//
// A Txn is used by one goroutine; make one per goroutine.
type Txn struct {
	parts []keyedPart
	err   error
}

// Part is one backend's share of a transaction.
type Part interface {
	// Commit applies the part. When it cannot apply as one unit (a
	// refused batch), it applies each operation on its own, so that the
	// error names the operation that failed and the rest still land.
	Commit() error
}

type keyedPart struct {
	key  any
	part Part
}

// Part returns tx's part for key, made with make the first time: how a
// backend finds its share. Parts commit in the order they were made.
func (tx *Txn) Part(key any, make func() Part) Part {
	for _, p := range tx.parts {
		if p.key == key {
			return p.part
		}
	}
	p := make()
	tx.parts = append(tx.parts, keyedPart{key, p})
	return p
}

// Printer is a Part that can show what its Commit would apply, applying
// nothing: nftables its operations as data, iptables each step's
// iptables-restore input (built from the kernel's tables, as Commit would).
type Printer interface {
	Print(w io.Writer) error
}

// Print writes what Commit would apply, part by part, and applies
// nothing; the transaction can still be committed after.
func (tx *Txn) Print(w io.Writer) error {
	if tx.err != nil {
		return tx.err
	}
	var errs []error
	for _, p := range tx.parts {
		pr, ok := p.part.(Printer)
		if !ok {
			fmt.Fprintf(w, "(a %T part, which cannot print)\n", p.part)
			continue
		}
		errs = append(errs, pr.Print(w))
	}
	return errors.Join(errs...)
}

// Fail records an error found while queueing (an unsupported key, say):
// Commit returns it and applies nothing.
func (tx *Txn) Fail(err error) {
	if tx.err == nil {
		tx.err = err
	}
}

// Empty reports whether nothing was queued.
func (tx *Txn) Empty() bool { return len(tx.parts) == 0 && tx.err == nil }

// Commit applies every part and returns their errors joined. A
// transaction commits once: its parts are forgotten after.
func (tx *Txn) Commit() error {
	if tx.err != nil {
		err := tx.err
		tx.parts, tx.err = nil, nil
		return err
	}
	var errs []error
	for _, p := range tx.parts {
		errs = append(errs, p.part.Commit())
	}
	tx.parts = nil
	return errors.Join(errs...)
}

// Do builds a transaction with build and commits it: a change of its own.
func Do(build func(tx *Txn)) error {
	var tx Txn
	build(&tx)
	return tx.Commit()
}
