package nftfake

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Render prints the fake kernel's table of one family as a reader checks
// it: each chain with its hook and priority and its rules as
// google/nftables decodes them, each set with its types and flags, and
// each element's key, data and comment. Golden files hold its output.
func (k *Kernel) Render(family byte, name string) string {
	t := k.table(family, name)
	if t == nil {
		return "(no table)\n"
	}
	c, _, _ := k.Dial()
	table := &nftables.Table{Name: t.name, Family: nftables.TableFamily(family)}
	var b strings.Builder
	fmt.Fprintf(&b, "table %d %s\n", family, t.name)
	for _, name := range t.order {
		fmt.Fprintf(&b, "  chain %s%s\n", name, chainHook(t.chains[name].msg))
		rules, err := c.GetRules(table, &nftables.Chain{Name: name, Table: table})
		if err != nil {
			fmt.Fprintf(&b, "    (rules: %v)\n", err)
		}
		for _, r := range rules {
			var parts []string
			for _, e := range r.Exprs {
				parts = append(parts, renderValue(reflect.ValueOf(e)))
			}
			fmt.Fprintf(&b, "    %s\n", strings.Join(parts, " "))
		}
	}
	sets, err := c.GetSets(table)
	if err != nil {
		fmt.Fprintf(&b, "  (sets: %v)\n", err)
	}
	for _, s := range sets {
		kind := "set"
		if s.IsMap {
			kind = "map"
		}
		fmt.Fprintf(&b, "  %s %s key %s", kind, s.Name, s.KeyType.Name)
		if s.IsMap {
			fmt.Fprintf(&b, " data %s", s.DataType.Name)
		}
		if s.Interval {
			b.WriteString(" interval")
		}
		b.WriteString("\n")
		elems, err := c.GetSetElements(s)
		if err != nil {
			fmt.Fprintf(&b, "    (elements: %v)\n", err)
		}
		for _, e := range elems {
			fmt.Fprintf(&b, "    %s", hex.EncodeToString(e.Key))
			if len(e.KeyEnd) > 0 {
				fmt.Fprintf(&b, "-%s", hex.EncodeToString(e.KeyEnd))
			}
			if e.IntervalEnd {
				b.WriteString(" end")
			}
			if len(e.Val) > 0 {
				fmt.Fprintf(&b, " : %s", hex.EncodeToString(e.Val))
			}

			fmt.Fprintf(&b, " %q\n", e.Comment)
		}
	}
	return b.String()
}

// chainHook reads a NEWCHAIN message's type, hook and priority.
func chainHook(m netlink.Message) string {
	a := attrs(m)
	hook, ok := a[unix.NFTA_CHAIN_HOOK]
	if !ok {
		return ""
	}
	var num, prio uint32
	ad, _ := netlink.NewAttributeDecoder(hook)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_HOOK_HOOKNUM:
			num = binary.BigEndian.Uint32(ad.Bytes())
		case unix.NFTA_HOOK_PRIORITY:
			prio = binary.BigEndian.Uint32(ad.Bytes())
		}
	}
	return fmt.Sprintf(" type %s hook %d priority %d", str(a[unix.NFTA_CHAIN_TYPE]), num, int32(prio))
}

// renderValue prints an expression as its type and its non-zero fields.
func renderValue(v reflect.Value) string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "nil"
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		var fields []string
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			// A set's ID names it within one batch only; the name stays.
			if !v.Type().Field(i).IsExported() || f.IsZero() || v.Type().Field(i).Name == "SetID" {
				continue
			}
			fields = append(fields, v.Type().Field(i).Name+"="+renderValue(f))
		}
		return strings.ToLower(v.Type().Name()) + "{" + strings.Join(fields, " ") + "}"
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return hex.EncodeToString(v.Bytes())
		}
		var items []string
		for i := 0; i < v.Len(); i++ {
			items = append(items, renderValue(v.Index(i)))
		}
		return "[" + strings.Join(items, " ") + "]"
	}
	return fmt.Sprint(v.Interface())
}
