package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// ErrInvalid is wrapped by every Error: a mistake in the config file.
var ErrInvalid = errors.New("invalid agent configuration")

// Error is one mistake in a config file. Its message is one sentence:
//
//	agent.yaml:7:14: captures[1].snaplen: 300000 is out of range: use 1 to 262144
//
// Load, Parse and Check return every Error they find, in file order,
// joined with errors.Join (one per line).
type Error struct {
	File   string
	Line   int    // 1-based
	Column int    // 1-based; 0 when unknown
	Path   string // key path such as captures[1].snaplen; empty for syntax errors
	Msg    string // what is wrong and what to do
	Err    error  // the cause, if any (e.g. a filter's compile error)
}

func (e *Error) Error() string {
	s := e.File + ":" + strconv.Itoa(e.Line)
	if e.Column > 0 {
		s += ":" + strconv.Itoa(e.Column)
	}
	if e.Path != "" {
		s += ": " + e.Path
	}
	return s + ": " + e.Msg
}

// Unwrap returns ErrInvalid and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Err}
}

// position is a place in the file.
type position struct{ line, column int }

func (p position) String() string { return "line " + strconv.Itoa(p.line) }

// problems collects the Errors of one file.
type problems struct {
	file string
	list []*Error
}

// add records a mistake at p; format and args make the message.
func (ps *problems) add(p position, path string, cause error, format string, args ...any) {
	ps.list = append(ps.list, &Error{File: ps.file, Line: p.line, Column: p.column, Path: path,
		Msg: fmt.Sprintf(format, args...), Err: cause})
}

// err is the Errors sorted by position, joined; nil without any.
func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	slices.SortStableFunc(ps.list, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	errs := make([]error, len(ps.list))
	for i, e := range ps.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}
