package nft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// op is one queued change of one attachment in one family.
type op struct {
	what string // for errors: "publish ports of container X"
	f    netfilter.Family
	add  []elem // elements to add; the table's base is completed first
	del  []elem // exact elements to delete, present or not
	// owner and sets: a deletion without a record (del empty) finds the
	// owner's elements in sets by their comment.
	owner netfilter.Owner
	sets  []*nftables.Set
	// onExists names the conflict when an add is refused because a key
	// holds another owner's element.
	onExists func() error
	// after runs once the op has landed (the accepts in other firewalls,
	// dropping source lists no port uses any more); ops with the same
	// afterKey ("" for none) run it once per commit: a thousand
	// attachments of one bridge restored together need its accepts once.
	after    func() error
	afterKey string
	// lists are the source allowlists the elements jump to: queued whole
	// before an add, and at least as an empty shell before a delete, whose
	// elements are re-added before they are deleted (see queueDelete).
	lists []srcList
}

func (o op) deletes() bool { return o.sets != nil }

// part is the nftables share of a netfilter.Txn: every op in one netlink
// batch, which the kernel applies atomically. The kernel frees each
// transaction's leftovers after an RCU grace period and a closing socket
// waits for it, so one batch per ADD or DEL instead of one per change
// keeps that wait to one.
type part struct {
	dial netfilter.NFTDial
	ops  []op
}

type partKey struct{}

func (b *Backend) part(tx *netfilter.Txn) *part {
	return tx.Part(partKey{}, func() netfilter.Part { return &part{dial: b.dial} }).(*part)
}

func (p *part) queue(o op) { p.ops = append(p.ops, o) }

// Commit sends every op in one batch. If the kernel refuses it, nothing
// of it landed, and each op is applied on its own: the error names the
// op that failed (an add's conflict names the port's owner), the others
// land, and a deletion whose exact elements changed falls back to
// finding the owner's elements by comment.
func (p *part) Commit() error {
	if len(p.ops) == 0 {
		return nil
	}
	c, done, err := p.dial()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	timeline.Mark("nft-dial")
	err = p.apply(c, p.ops)
	var unhookErr error // the session's, not the ops': they landed
	if err == nil {
		unhookErr = p.unhook(c, p.ops)
	}
	done(errors.Join(err, unhookErr))
	timeline.Mark("nft-apply")
	if err != nil {
		var errs []error
		for _, o := range p.ops {
			errs = append(errs, p.alone(o))
		}
		return errors.Join(errs...)
	}
	return p.after(p.ops)
}

// apply queues ops on c and flushes them as one batch.
func (p *part) apply(c netfilter.NFTSession, ops []op) error {
	tables := map[netfilter.Family]bool{} // the family's table exists (or will)
	based := map[netfilter.Family]bool{}  // its base is complete (or will be)
	hooked := map[netfilter.Family]bool{} // its filter hooks are queued
	for _, o := range ops {
		l := newLayout(o.f)
		if len(o.add) > 0 {
			// based, not tables: a deletion earlier in the batch found the
			// table there, which says nothing of its base (dnetctl
			// restore deletes, then adds, a spec whose check failed).
			if !based[o.f] && !c.Known[baseKey(o.f)] {
				what, present := l.missing(c)
				switch {
				case what != "":
					hooked[o.f] = present > 0 || l.needsHooks(o.add)
					if err := l.ensureBase(c.Conn, hooked[o.f]); err != nil {
						return err
					}
				case present == 0 && !l.needsHooks(o.add):
					// A bridge's route_localnet element without the
					// hooks: a hand deletion of all three, which no
					// element added here would repair.
					if full, err := hasElements(c, l.table, l.hairpin.Name); err != nil || full {
						l.ensureHooks(c.Conn)
						hooked[o.f] = true
					}
				}
			}
			tables[o.f], based[o.f] = true, true
			if !hooked[o.f] && l.needsHooks(o.add) {
				l.ensureHooks(c.Conn)
				hooked[o.f] = true
			}
			for _, list := range o.lists {
				if err := l.ensureList(c.Conn, list); err != nil {
					return err
				}
			}
			if err := queueAdd(c.Conn, o.add); err != nil {
				return err
			}
			continue
		}
		if _, known := tables[o.f]; !known {
			_, err := c.ListTableOfFamily(Table, o.f.NFT())
			tables[o.f] = err == nil
		}
		if !tables[o.f] {
			continue // no table: nothing of ours can be installed
		}
		var err error
		if len(o.del) > 0 {
			for _, list := range o.lists {
				if err := l.listShell(c.Conn, list); err != nil {
					return err
				}
			}
			err = queueDelete(c.Conn, o.del)
		} else {
			err = queueByComment(c, o.owner, o.sets)
		}
		if err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return err
	}
	for f := range based {
		c.Known[baseKey(f)] = true
	}
	return nil
}

// unhook removes the filter hooks of each family whose elements ops
// removed, if no element needs them any more (hooks.go); on an error
// they stay.
func (p *part) unhook(c netfilter.NFTSession, ops []op) error {
	done := map[netfilter.Family]bool{}
	var errs []error
	for _, o := range ops {
		if l := newLayout(o.f); !done[o.f] && l.mayUnhook(o) {
			done[o.f] = true
			errs = append(errs, l.unhookIfUnused(c))
		}
	}
	return errors.Join(errs...)
}

// alone applies one op in its own batch, after a refused batch.
func (p *part) alone(o op) error {
	c, done, err := p.dial()
	if err != nil {
		return fmt.Errorf("%s nftables: %s: %w", o.f, o.what, err)
	}
	err = p.apply(c, []op{o})
	done(err)
	switch {
	case err == nil:
		return p.after([]op{o})
	case o.onExists != nil && errors.Is(err, unix.EEXIST):
		return o.onExists()
	case o.deletes() && len(o.del) > 0:
		// An element now holds other data (or a set is gone): find the
		// owner's elements by comment instead.
		byTag := o
		byTag.del = nil
		if c, done, err = p.dial(); err == nil {
			err = p.apply(c, []op{byTag})
			done(err)
		}
	}
	if err != nil {
		return fmt.Errorf("%s nftables: %s: %w", o.f, o.what, err)
	}
	return nil
}

func (p *part) after(ops []op) error {
	var errs []error
	done := map[string]bool{}
	for _, o := range ops {
		if o.after == nil || (o.afterKey != "" && done[o.afterKey]) {
			continue
		}
		done[o.afterKey] = true
		errs = append(errs, o.after())
	}
	return errors.Join(errs...)
}

// baseKey marks, in a session's Known, a family whose base was found or
// made complete by this process.
type baseKey netfilter.Family

// elemsPerMessage bounds the elements of one netlink message: its
// element list is one attribute, whose length is 16 bits, and an
// allowlist element with its comment takes about 120 bytes. Sending them
// a message each instead would make the kernel answer a thousand-entry
// allowlist with a thousand acks, more than the socket buffer holds.
const elemsPerMessage = 256

// bySet calls queue for elems in runs of one set, at most
// elemsPerMessage at a time, keeping their order.
func bySet(elems []elem, queue func(*nftables.Set, []nftables.SetElement) error) error {
	for i := 0; i < len(elems); {
		j := i
		var run []nftables.SetElement
		for j < len(elems) && elems[j].set == elems[i].set && len(run) < elemsPerMessage {
			run = append(run, elems[j].e)
			j++
		}
		if err := queue(elems[i].set, run); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func queueAdd(c *nftables.Conn, elems []elem) error { return bySet(elems, c.SetAddElements) }

// queueDelete deletes elems whether or not they exist: add (a no-op when
// present with the same data), then delete.
func queueDelete(c *nftables.Conn, elems []elem) error {
	if err := queueAdd(c, elems); err != nil {
		return err
	}
	return bySet(elems, func(s *nftables.Set, es []nftables.SetElement) error {
		keys := make([]nftables.SetElement, len(es))
		for i, e := range es {
			// An interval element is named by both ends: by its start
			// alone, the kernel finds no such element and refuses the batch.
			keys[i] = nftables.SetElement{Key: e.Key, KeyEnd: e.KeyEnd}
		}
		return c.SetDeleteElements(s, keys)
	})
}

// queueByComment dumps sets and queues the deletion of the elements
// tagged with owner.
func queueByComment(c netfilter.NFTSession, o netfilter.Owner, sets []*nftables.Set) error {
	for _, s := range sets {
		have, err := c.GetSetElements(s)
		if err != nil {
			continue // the set is gone: nothing to delete there
		}
		var mine []nftables.SetElement
		for _, e := range have {
			if strings.HasPrefix(e.Comment, o.Marker()) {
				mine = append(mine, nftables.SetElement{Key: e.Key, KeyEnd: e.KeyEnd})
			}
		}
		for len(mine) > 0 {
			n := min(len(mine), elemsPerMessage)
			if err := c.SetDeleteElements(s, mine[:n]); err != nil {
				return err
			}
			mine = mine[n:]
		}
	}
	return nil
}
