package storage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// strftimeFormat is the subset of strftime(3) that tcpdump users put in
// -w names with -G: %Y %y %m %d %H %M %S %j %s %F %T %%. Anything else is
// refused rather than guessed.
type strftimeFormat struct {
	src   string
	parts []strftimePart
}

type strftimePart struct {
	conv byte   // 0 for a literal
	lit  string // the literal
}

// strftimeConv maps a conversion to a Go layout (or "" for %s) and the
// regular expression of its output.
var strftimeConv = map[byte]struct{ layout, re string }{
	'Y': {"2006", "[0-9]{4}"},
	'y': {"06", "[0-9]{2}"},
	'm': {"01", "[0-9]{2}"},
	'd': {"02", "[0-9]{2}"},
	'H': {"15", "[0-9]{2}"},
	'M': {"04", "[0-9]{2}"},
	'S': {"05", "[0-9]{2}"},
	'j': {"002", "[0-9]{3}"},
	'F': {"2006-01-02", "[0-9]{4}-[0-9]{2}-[0-9]{2}"},
	'T': {"15:04:05", "[0-9]{2}:[0-9]{2}:[0-9]{2}"},
	's': {"", "[0-9]+"},
}

func parseStrftime(s string) (*strftimeFormat, error) {
	f := &strftimeFormat{src: s}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, fmt.Errorf("file name %q ends in a lone %%: write %%%% for a percent sign", s)
		}
		i++
		c := s[i]
		if c == '%' {
			lit.WriteByte('%')
			continue
		}
		if _, ok := strftimeConv[c]; !ok {
			return nil, fmt.Errorf("file name %q: strftime conversion %%%c is not supported: use %%Y %%y %%m %%d %%H %%M %%S %%j %%s %%F %%T or %%%%", s, c)
		}
		if lit.Len() > 0 {
			f.parts = append(f.parts, strftimePart{lit: lit.String()})
			lit.Reset()
		}
		f.parts = append(f.parts, strftimePart{conv: c})
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, strftimePart{lit: lit.String()})
	}
	return f, nil
}

func (f *strftimeFormat) format(t time.Time) string {
	var b strings.Builder
	for _, p := range f.parts {
		switch {
		case p.conv == 0:
			b.WriteString(p.lit)
		case p.conv == 's':
			b.WriteString(strconv.FormatInt(t.Unix(), 10))
		default:
			b.WriteString(t.Format(strftimeConv[p.conv].layout))
		}
	}
	return b.String()
}

// regexp is the expression of the names format gives.
func (f *strftimeFormat) regexp() string {
	var b strings.Builder
	for _, p := range f.parts {
		if p.conv == 0 {
			b.WriteString(regexp.QuoteMeta(p.lit))
		} else {
			b.WriteString(strftimeConv[p.conv].re)
		}
	}
	return b.String()
}
