package main

import (
	"fmt"
	"os"
	"strings"
)

// test/bench/README.md shows the targets table of the run kept in test/bench/results,
// between these markers; publishReadme copies it there, so the two come
// from one run and are never edited apart.
const (
	readmeBegin = "<!-- bench:targets begin (make bench-readme writes this) -->"
	readmeEnd   = "<!-- bench:targets end -->"
)

// publishReadme replaces the README's targets table with the one in resultsMD.
func publishReadme(resultsMD, readme string) error {
	res, err := os.ReadFile(resultsMD)
	if err != nil {
		return err
	}
	table, err := targetsTable(string(res))
	if err != nil {
		return fmt.Errorf("%s: %w", resultsMD, err)
	}
	doc, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	out, err := replaceBetween(string(doc), readmeBegin, readmeEnd, table)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	return os.WriteFile(readme, []byte(out), 0o644)
}

// targetsTable is the table under the "### Targets" heading, with the
// run's date and machine line from the top of results.md.
func targetsTable(md string) (string, error) {
	lines := strings.Split(md, "\n")
	var intro string
	for _, l := range lines {
		if strings.Contains(l, "`make bench`") {
			intro = l
			break
		}
	}
	start := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "### Targets") {
			start = i + 1
		}
	}
	if start < 0 || intro == "" {
		return "", fmt.Errorf("no targets table (is it a results.md of make bench?)")
	}
	var table []string
	for _, l := range lines[start:] {
		if strings.HasPrefix(l, "|") {
			table = append(table, l)
		} else if len(table) > 0 {
			break
		}
	}
	return intro + "\n\n" + strings.Join(table, "\n") + "\n", nil
}

func replaceBetween(doc, begin, end, body string) (string, error) {
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %q and %q not found", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}
