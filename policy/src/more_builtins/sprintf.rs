//! `sprintf(format, values)` as OPA has it: Go's `fmt.Sprintf` with the
//! values turned into Go values the way OPA turns them:
//!
//! - a number written with a fraction or an exponent: `float64`; an
//!   integer: `int64`, or `*big.Int` beyond;
//! - a string: `string`;
//! - anything else (booleans, null, arrays, objects, sets): the string of
//!   its Rego text (`true`, `[1, "a"]`, `{"a": 1}`, `{1, 2}`, `set()`), so
//!   `%v` and `%s` print it and `%t` gives `%!t(string=true)` as in OPA.
//!
//! The format is Go's: flags `-`, `+`, `#`, ` ` and `0`, width and
//! precision (`*` too), argument indexes (`%[2]d`), the verbs `%v %s %d %f
//! %F %e %E %g %G %x %X %o %O %b %c %q %U %T %%`, and Go's error texts
//! (`%!d(string=abc)`, `%!d(MISSING)`, `%!(EXTRA int64=2)`, `%!(NOVERB)`).
//!
//! Where usher differs from OPA:
//! - a width or precision above [`MAX_WIDTH`] (Go allows a million), more
//!   than [`MAX_PADDING`] bytes of padding in one call, or an output longer
//!   than [`MAX_GROWTH`] plus twice the format's and the string values'
//!   lengths make the call undefined;
//! - `%x`, `%X` and `%b` of a float (Go's hexadecimal and binary float
//!   forms) and `%p` make the call undefined;
//! - `%q` escapes what Go's `strconv.IsPrint` rejects among control, space
//!   and format characters, private use and noncharacters, but prints a
//!   code point Unicode has not assigned as it is (Go escapes it);
//! - regorus keeps no number's text: a literal written with an exponent
//!   (`1e6`) is an integer to usher, while OPA passes its text (`%v`
//!   prints `1e6`, `%d` gives `%!d(string=1e6)`).

use std::fmt::Write as _;

use regorus::Value;

use super::json::{classify, opa_cmp, sorted_set, write_number, Num};

/// The largest width or precision usher accepts (Go: 1,000,000).
pub(super) const MAX_WIDTH: usize = 1000;

/// The most padding (spaces or zeros) one call may add.
pub(super) const MAX_PADDING: usize = 1 << 20;

/// What one call may write beyond twice the format and its string values
/// (precisions of a thousand digits, repeated, would add up).
pub(super) const MAX_GROWTH: usize = 1 << 20;

/// `sprintf(format, values)`: undefined unless `format` is a string and
/// `values` an array.
pub(super) fn sprintf(args: &[Value]) -> Value {
    let (Some(Value::String(format)), Some(Value::Array(values))) = (args.first(), args.get(1))
    else {
        return Value::Undefined;
    };
    let values: Vec<Arg> = values.iter().map(Arg::from_value).collect();
    match go_sprintf(format, &values) {
        Some(s) => Value::from(s),
        None => Value::Undefined,
    }
}

/// A Go value OPA passes to `fmt.Sprintf`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arg {
    Int(i64),
    /// `*big.Int`: the Rego value (digits in any base come from it).
    Big(Value),
    Float(f64),
    Str(String),
}

impl Arg {
    pub(super) fn from_value(v: &Value) -> Arg {
        match v {
            Value::String(s) => Arg::Str(s.to_string()),
            Value::Number(_) => match classify(v) {
                Some(Num::Int(i)) => Arg::Int(i),
                Some(Num::Big(_)) => Arg::Big(v.clone()),
                Some(Num::Float(f)) => Arg::Float(f),
                None => Arg::Str(rego_text(v)),
            },
            other => Arg::Str(rego_text(other)),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Arg::Int(_) => "int64",
            Arg::Big(_) => "*big.Int",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
        }
    }
}

/// A value's Rego text, as OPA's `Term.String()` writes it.
pub(super) fn rego_text(v: &Value) -> String {
    let mut out = String::new();
    write_rego(&mut out, v);
    out
}

fn write_rego(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => write_number(out, v),
        Value::String(s) => out.push_str(&go_quote(s, '"', false)),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(out, item);
            }
            out.push(']');
        }
        Value::Set(_) => {
            let items = sorted_set(v);
            if items.is_empty() {
                out.push_str("set()");
                return;
            }
            out.push('{');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(out, item);
            }
            out.push('}');
        }
        Value::Object(o) => {
            let mut entries: Vec<(&Value, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| opa_cmp(a.0, b.0));
            out.push('{');
            for (i, (k, val)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_rego(out, k);
                out.push_str(": ");
                write_rego(out, val);
            }
            out.push('}');
        }
        Value::Undefined => out.push_str("undefined"),
    }
}

// ------------------------------------------------------------ Go's fmt

#[derive(Default, Clone, Copy)]
struct Flags {
    sharp: bool,
    zero: bool,
    plus: bool,
    minus: bool,
    space: bool,
    sharp_v: bool,
    plus_v: bool,
    wid: usize,
    wid_present: bool,
    prec: usize,
    prec_present: bool,
}

/// Go's `pp` (printer state), writing into `buf`.
struct Printer {
    buf: String,
    f: Flags,
    /// Padding still allowed (see [`MAX_PADDING`]).
    budget: usize,
    /// The longest the output may grow (see [`MAX_GROWTH`]).
    limit: usize,
    /// Set when the call must be undefined.
    refused: bool,
}

/// Go's `fmt.Sprintf(format, values...)`, or `None` past usher's limits.
pub(super) fn go_sprintf(format: &str, a: &[Arg]) -> Option<String> {
    let texts: usize = a
        .iter()
        .map(|arg| match arg {
            Arg::Str(s) => s.len(),
            _ => 0,
        })
        .sum();
    let mut p = Printer {
        buf: String::with_capacity(format.len()),
        f: Flags::default(),
        budget: MAX_PADDING,
        limit: MAX_GROWTH + 2 * (format.len() + texts),
        refused: false,
    };
    p.do_printf(format, a);
    if p.refused {
        None
    } else {
        Some(p.buf)
    }
}

/// Go's `parsenum`: a decimal number at `s[start..end]`; usher refuses
/// numbers above [`MAX_WIDTH`] (`Err`).
fn parsenum(s: &[u8], start: usize, end: usize) -> Result<(usize, bool, usize), ()> {
    let mut num = 0usize;
    let mut isnum = false;
    let mut i = start;
    while i < end && s[i].is_ascii_digit() {
        num = num * 10 + usize::from(s[i] - b'0');
        if num > MAX_WIDTH {
            return Err(());
        }
        isnum = true;
        i += 1;
    }
    Ok((num, isnum, i))
}

impl Printer {
    fn refuse(&mut self) {
        self.refused = true;
    }

    fn do_printf(&mut self, format: &str, a: &[Arg]) {
        let s = format.as_bytes();
        let end = s.len();
        let mut arg_num = 0usize;
        let mut after_index;
        let mut reordered = false;
        let mut i = 0usize;
        while i < end && !self.refused {
            let mut good_arg_num = true;
            let lasti = i;
            while i < end && s[i] != b'%' {
                i += 1;
            }
            if i > lasti {
                self.buf.push_str(&format[lasti..i]);
            }
            if i >= end {
                break;
            }
            i += 1; // the '%'
            self.f = Flags::default();
            while i < end {
                match s[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            // Argument index, width.
            let r = self.arg_number(arg_num, s, i, a.len(), &mut reordered, &mut good_arg_num);
            let Some((n, ni, found)) = r else { return };
            (arg_num, i, after_index) = (n, ni, found);
            if i < end && s[i] == b'*' {
                i += 1;
                let (wid, ok, n) = self.int_from_arg(a, arg_num);
                arg_num = n;
                if self.refused {
                    return;
                }
                (self.f.wid, self.f.wid_present) = (wid.unsigned_abs() as usize, ok);
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                }
                if wid < 0 {
                    self.f.minus = true;
                    self.f.zero = false;
                }
                after_index = false;
            } else {
                let Ok((wid, present, ni)) = parsenum(s, i, end) else {
                    return self.refuse();
                };
                (self.f.wid, self.f.wid_present, i) = (wid, present, ni);
                if after_index && present {
                    good_arg_num = false;
                }
            }
            // Precision.
            if i + 1 < end && s[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false;
                }
                let r = self.arg_number(arg_num, s, i, a.len(), &mut reordered, &mut good_arg_num);
                let Some((n, ni, found)) = r else { return };
                (arg_num, i, after_index) = (n, ni, found);
                if i < end && s[i] == b'*' {
                    i += 1;
                    let (prec, ok, n) = self.int_from_arg(a, arg_num);
                    arg_num = n;
                    if self.refused {
                        return;
                    }
                    (self.f.prec, self.f.prec_present) = (prec.unsigned_abs() as usize, ok);
                    if prec < 0 {
                        (self.f.prec, self.f.prec_present) = (0, false);
                    }
                    if !self.f.prec_present {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let Ok((prec, present, ni)) = parsenum(s, i, end) else {
                        return self.refuse();
                    };
                    (self.f.prec, i) = (if present { prec } else { 0 }, ni);
                    self.f.prec_present = true;
                }
            }
            if !after_index {
                let r = self.arg_number(arg_num, s, i, a.len(), &mut reordered, &mut good_arg_num);
                let Some((n, ni, _)) = r else { return };
                (arg_num, i) = (n, ni);
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let Some(verb) = format[i..].chars().next() else {
                break;
            };
            i += verb.len_utf8();
            if verb == '%' {
                self.buf.push('%');
            } else if !good_arg_num {
                let _ = write!(self.buf, "%!{verb}(BADINDEX)");
            } else if arg_num >= a.len() {
                let _ = write!(self.buf, "%!{verb}(MISSING)");
            } else {
                if verb == 'v' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                self.print_arg(&a[arg_num], verb);
                arg_num += 1;
            }
            if self.buf.len() > self.limit {
                self.refuse();
            }
        }
        if !self.refused && !reordered && arg_num < a.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, arg) in a[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                self.buf.push_str(arg.type_name());
                self.buf.push('=');
                self.print_arg(arg, 'v');
            }
            self.buf.push(')');
            if self.buf.len() > self.limit {
                self.refuse();
            }
        }
    }

    /// Go's `argNumber`: an explicit `[n]` at `s[i..]`. `None` when usher
    /// refuses the number.
    fn arg_number(
        &mut self,
        arg_num: usize,
        s: &[u8],
        i: usize,
        num_args: usize,
        reordered: &mut bool,
        good_arg_num: &mut bool,
    ) -> Option<(usize, usize, bool)> {
        if s.len() <= i || s[i] != b'[' {
            return Some((arg_num, i, false));
        }
        *reordered = true;
        // Go's parseArgNumber.
        let rest = &s[i..];
        let (index, wid, ok) = if rest.len() < 3 {
            (0, 1, false)
        } else {
            match rest.iter().position(|&c| c == b']') {
                Some(close) => match parsenum(rest, 1, close) {
                    Err(()) => {
                        self.refuse();
                        return None;
                    }
                    Ok((n, true, newi)) if newi == close => (n.wrapping_sub(1), close + 1, true),
                    Ok(_) => (0, close + 1, false),
                },
                None => (0, 1, false),
            }
        };
        if ok && index < num_args {
            return Some((index, i + wid, true));
        }
        *good_arg_num = false;
        Some((arg_num, i + wid, ok))
    }

    /// Go's `intFromArg`: a `*` width or precision.
    fn int_from_arg(&mut self, a: &[Arg], arg_num: usize) -> (i64, bool, usize) {
        match a.get(arg_num) {
            None => (0, false, arg_num),
            Some(Arg::Int(n)) => {
                if n.unsigned_abs() > MAX_WIDTH as u64 {
                    self.refuse();
                }
                (*n, true, arg_num + 1)
            }
            Some(_) => (0, false, arg_num + 1),
        }
    }

    fn print_arg(&mut self, arg: &Arg, verb: char) {
        match verb {
            'T' => {
                let name = arg.type_name();
                self.fmt_s(name);
                return;
            }
            'p' => {
                if matches!(arg, Arg::Big(_)) {
                    // An address: not reproducible.
                    return self.refuse();
                }
                return self.bad_verb(arg, verb);
            }
            _ => {}
        }
        match arg {
            Arg::Int(i) => self.fmt_int64(*i, verb, arg),
            Arg::Big(v) => self.fmt_big(v, verb),
            Arg::Float(f) => self.fmt_float_verb(*f, verb, arg),
            Arg::Str(s) => self.fmt_string(s, verb, arg),
        }
    }

    fn bad_verb(&mut self, arg: &Arg, verb: char) {
        let _ = write!(self.buf, "%!{verb}({}=", arg.type_name());
        self.print_arg(arg, 'v');
        self.buf.push(')');
    }

    // -------------------------------------------------------- padding

    fn write_padding(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if n > self.budget {
            return self.refuse();
        }
        self.budget -= n;
        let c = if self.f.zero { '0' } else { ' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    /// Go's `pad`: `s` padded to the width (counted in characters).
    fn pad(&mut self, s: &str) {
        if !self.f.wid_present || self.f.wid == 0 {
            self.buf.push_str(s);
            return;
        }
        let width = self.f.wid.saturating_sub(s.chars().count());
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(width);
        } else {
            self.write_padding(width);
            self.buf.push_str(s);
        }
    }

    /// `pad` with zero padding off (Go saves and restores `f.zero`).
    fn pad_spaces(&mut self, s: &str) {
        let zero = self.f.zero;
        self.f.zero = false;
        self.pad(s);
        self.f.zero = zero;
    }

    // -------------------------------------------------------- integers

    fn fmt_int64(&mut self, v: i64, verb: char, arg: &Arg) {
        let u = v as u64;
        match verb {
            'v' | 'd' => self.fmt_integer(u, 10, true, verb, false),
            'b' => self.fmt_integer(u, 2, true, verb, false),
            'o' | 'O' => self.fmt_integer(u, 8, true, verb, false),
            'x' => self.fmt_integer(u, 16, true, verb, false),
            'X' => self.fmt_integer(u, 16, true, verb, true),
            'c' => {
                let c = rune(u);
                self.pad(c.encode_utf8(&mut [0; 4]));
            }
            'q' => {
                let quoted = go_quote(rune(u).encode_utf8(&mut [0; 4]), '\'', self.f.plus);
                self.pad(&quoted);
            }
            'U' => self.fmt_unicode(u),
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmt.fmtInteger`.
    fn fmt_integer(&mut self, u: u64, base: u64, signed: bool, verb: char, upper: bool) {
        let negative = signed && (u as i64) < 0;
        let mut u = if negative {
            (u as i64).unsigned_abs()
        } else {
            u
        };
        let mut prec = 0usize;
        if self.f.prec_present {
            prec = self.f.prec;
            if prec == 0 && u == 0 {
                let zero = self.f.zero;
                self.f.zero = false;
                self.write_padding(self.f.wid);
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero && self.f.wid_present {
            prec = self.f.wid;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits: &[u8; 16] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        // Right to left, reversed at the end.
        let mut rev: Vec<u8> = Vec::with_capacity(prec.max(24));
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        if prec > rev.len() {
            if prec - rev.len() > self.budget {
                return self.refuse();
            }
            self.budget -= prec - rev.len();
            rev.resize(prec, b'0');
        }
        if self.f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => rev.extend_from_slice(if upper { b"X0" } else { b"x0" }),
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if negative {
            rev.push(b'-');
        } else if self.f.plus {
            rev.push(b'+');
        } else if self.f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let text = String::from_utf8(rev).unwrap_or_default();
        self.pad_spaces(&text);
    }

    /// Go's `fmt.fmtUnicode` (`%U`).
    fn fmt_unicode(&mut self, u: u64) {
        let prec = if self.f.prec_present && self.f.prec > 4 {
            self.f.prec
        } else {
            4
        };
        let mut text = format!("U+{u:0prec$X}");
        if self.f.sharp {
            if let Some(c) = u32::try_from(u).ok().and_then(char::from_u32) {
                if is_print(c) {
                    let _ = write!(text, " '{c}'");
                }
            }
        }
        self.pad_spaces(&text);
    }

    /// `*big.Int`'s `Format`.
    fn fmt_big(&mut self, v: &Value, verb: char) {
        let Value::Number(n) = v else { return };
        let (base_digits, prefix) = match verb {
            'b' => (n.format_bin(), "0b"),
            'o' | 'O' => (n.format_octal(), "0"),
            'd' | 's' | 'v' => (n.format_decimal(), ""),
            'x' => (n.format_hex(), "0x"),
            'X' => (n.format_big_hex(), "0X"),
            _ => {
                let _ = write!(self.buf, "%!{verb}(big.Int={})", n.format_decimal());
                return;
            }
        };
        let (neg, digits) = match base_digits.strip_prefix('-') {
            Some(d) => (true, d.to_string()),
            None => (false, base_digits),
        };
        let sign = if neg {
            "-"
        } else if self.f.plus || self.f.plus_v {
            "+"
        } else if self.f.space {
            " "
        } else {
            ""
        };
        let mut prefix = if self.f.sharp || self.f.sharp_v {
            prefix
        } else {
            ""
        };
        if verb == 'O' {
            prefix = "0o";
        }
        let mut zeros = 0usize;
        if self.f.prec_present && digits.len() < self.f.prec {
            zeros = self.f.prec - digits.len();
        }
        let length = sign.len() + prefix.len() + zeros + digits.len();
        let (mut left, mut right) = (0usize, 0usize);
        if self.f.wid_present && length < self.f.wid {
            let d = self.f.wid - length;
            if self.f.minus {
                right = d;
            } else if self.f.zero && !self.f.prec_present {
                zeros = d;
            } else {
                left = d;
            }
        }
        if left + zeros + right > self.budget {
            return self.refuse();
        }
        self.budget -= left + zeros + right;
        self.buf.extend(std::iter::repeat_n(' ', left));
        self.buf.push_str(sign);
        self.buf.push_str(prefix);
        self.buf.extend(std::iter::repeat_n('0', zeros));
        self.buf.push_str(&digits);
        self.buf.extend(std::iter::repeat_n(' ', right));
    }

    // -------------------------------------------------------- floats

    fn fmt_float_verb(&mut self, v: f64, verb: char, arg: &Arg) {
        match verb {
            'v' => self.fmt_float(v, 'g', None),
            'g' | 'G' => self.fmt_float(v, verb, None),
            'f' | 'F' => self.fmt_float(v, 'f', Some(6)),
            'e' | 'E' => self.fmt_float(v, verb, Some(6)),
            // Hexadecimal and binary floats: not implemented.
            'b' | 'x' | 'X' => self.refuse(),
            _ => self.bad_verb(arg, verb),
        }
    }

    /// Go's `fmt.fmtFloat`; `prec` `None` is Go's -1 (shortest).
    fn fmt_float(&mut self, v: f64, verb: char, prec: Option<usize>) {
        let prec = if self.f.prec_present {
            Some(self.f.prec)
        } else {
            prec
        };
        if !v.is_finite() {
            // Not a Rego number.
            return self.refuse();
        }
        let body = format_float(v.abs(), verb, prec);
        let mut sign = if v.is_sign_negative() { '-' } else { '+' };
        if self.f.space && sign == '+' && !self.f.plus {
            sign = ' ';
        }
        let mut body = body;
        if self.f.sharp {
            body = sharp_float(&body, verb, prec);
        }
        if self.f.plus || sign != '+' {
            let len = body.len() + 1;
            if self.f.zero && self.f.wid_present && self.f.wid > len {
                self.buf.push(sign);
                self.write_padding(self.f.wid - len);
                self.buf.push_str(&body);
                return;
            }
            let mut num = String::with_capacity(len);
            num.push(sign);
            num.push_str(&body);
            self.pad(&num);
            return;
        }
        self.pad(&body);
    }

    // -------------------------------------------------------- strings

    fn fmt_string(&mut self, s: &str, verb: char, arg: &Arg) {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => self.fmt_s(s),
            'x' => self.fmt_sx(s, false),
            'X' => self.fmt_sx(s, true),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(arg, verb),
        }
    }

    fn truncate<'a>(&self, s: &'a str) -> &'a str {
        if self.f.prec_present {
            if let Some((i, _)) = s.char_indices().nth(self.f.prec) {
                return &s[..i];
            }
        }
        s
    }

    fn fmt_s(&mut self, s: &str) {
        let s = self.truncate(s);
        self.pad(s);
    }

    fn fmt_q(&mut self, s: &str) {
        let s = self.truncate(s);
        if self.f.sharp && can_backquote(s) {
            let quoted = format!("`{s}`");
            self.pad(&quoted);
            return;
        }
        let quoted = go_quote(s, '"', self.f.plus);
        self.pad(&quoted);
    }

    /// Go's `fmtSbx` for a string: hexadecimal bytes.
    fn fmt_sx(&mut self, s: &str, upper: bool) {
        let digits: &[u8; 16] = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let bytes = s.as_bytes();
        let mut length = bytes.len();
        if self.f.prec_present && self.f.prec < length {
            length = self.f.prec;
        }
        let mut width = 2 * length;
        if width > 0 {
            if self.f.space {
                if self.f.sharp {
                    width *= 2;
                }
                width += length - 1;
            } else if self.f.sharp {
                width += 2;
            }
        } else {
            if self.f.wid_present {
                self.write_padding(self.f.wid);
            }
            return;
        }
        if self.f.wid_present && self.f.wid > width && !self.f.minus {
            self.write_padding(self.f.wid - width);
        }
        let x = if upper { 'X' } else { 'x' };
        if self.f.sharp {
            self.buf.push('0');
            self.buf.push(x);
        }
        for (i, b) in bytes[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                self.buf.push(' ');
                if self.f.sharp {
                    self.buf.push('0');
                    self.buf.push(x);
                }
            }
            self.buf.push(char::from(digits[usize::from(b >> 4)]));
            self.buf.push(char::from(digits[usize::from(b & 0xf)]));
        }
        if self.f.wid_present && self.f.wid > width && self.f.minus {
            self.write_padding(self.f.wid - width);
        }
    }
}

/// A Go rune from an integer: invalid ones are U+FFFD.
fn rune(u: u64) -> char {
    u32::try_from(u)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

// ------------------------------------------------------------ strconv

/// Decimal digits of a float: `d` (no leading zeros; empty for 0) with
/// the decimal point after `dp` of them (Go's `decimalSlice`).
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

/// Digits of `v` (not negative): the shortest that read back as `v`
/// (`sig` `None`), or rounded to `sig` significant digits; trailing zeros
/// trimmed.
fn digits(v: f64, sig: Option<usize>) -> Digits {
    let text = match sig {
        None => format!("{v:e}"),
        Some(n) => format!("{:.*e}", n.saturating_sub(1), v),
    };
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

/// Go's `strconv.FormatFloat(v, verb, prec, 64)` for `v >= 0` and the
/// verbs e, E, f, g, G (`prec` `None` is -1).
fn format_float(v: f64, verb: char, prec: Option<usize>) -> String {
    match verb {
        'f' => match prec {
            Some(p) => format!("{v:.p$}"),
            None => format!("{v}"),
        },
        'e' | 'E' => {
            let d = digits(v, prec.map(|p| p + 1));
            let p = prec.unwrap_or(d.d.len().saturating_sub(1));
            fmt_e(&d, p, verb)
        }
        _ => {
            // 'g' / 'G'
            let shortest = prec.is_none();
            let (d, mut p) = match prec {
                None => {
                    let d = digits(v, None);
                    let n = d.d.len();
                    (d, n)
                }
                Some(p) => {
                    let p = p.max(1);
                    (digits(v, Some(p)), p)
                }
            };
            let nd = d.d.len();
            let mut eprec = p;
            if eprec > nd && nd as i32 >= d.dp {
                eprec = nd;
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec as i32 {
                if p > nd {
                    p = nd;
                }
                let e = if verb == 'G' { 'E' } else { 'e' };
                return fmt_e(&d, p.saturating_sub(1), e);
            }
            if p as i32 > d.dp {
                p = nd;
            }
            fmt_f(&d, (p as i32 - d.dp).max(0) as usize)
        }
    }
}

/// Go's `fmtE`.
fn fmt_e(d: &Digits, prec: usize, e: char) -> String {
    let mut out = String::new();
    out.push(d.d.first().map_or('0', |&c| char::from(c)));
    if prec > 0 {
        out.push('.');
        let m = d.d.len().min(prec + 1);
        for &c in d.d.get(1..m).unwrap_or_default() {
            out.push(char::from(c));
        }
        for _ in m.max(1)..=prec {
            out.push('0');
        }
    }
    out.push(e);
    let mut exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    if exp < 0 {
        out.push('-');
        exp = -exp;
    } else {
        out.push('+');
    }
    if exp < 10 {
        out.push('0');
    }
    let _ = write!(out, "{exp}");
    out
}

/// Go's `fmtF`.
fn fmt_f(d: &Digits, prec: usize) -> String {
    let mut out = String::new();
    if d.dp > 0 {
        let dp = d.dp as usize;
        let m = d.d.len().min(dp);
        out.extend(d.d[..m].iter().map(|&c| char::from(c)));
        out.extend(std::iter::repeat_n('0', dp - m));
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 0..prec {
            let j = d.dp + i as i32;
            let c = if j >= 0 && (j as usize) < d.d.len() {
                char::from(d.d[j as usize])
            } else {
                '0'
            };
            out.push(c);
        }
    }
    out
}

/// Go's `#` flag on floats: a decimal point always, and for %g / %v the
/// trailing zeros up to the precision (6 by default).
fn sharp_float(num: &str, verb: char, prec: Option<usize>) -> String {
    let mut digits: i64 = match verb {
        'g' | 'G' => prec.map_or(6, |p| p as i64),
        _ => 0,
    };
    let (mut head, tail) = match num.find(['e', 'E']) {
        Some(i) => (num[..i].to_string(), num[i..].to_string()),
        None => (num.to_string(), String::new()),
    };
    let mut saw_nonzero = false;
    let mut has_point = false;
    for c in head.chars() {
        if c == '.' {
            has_point = true;
            continue;
        }
        if c != '0' {
            saw_nonzero = true;
        }
        if saw_nonzero {
            digits -= 1;
        }
    }
    if !has_point {
        if head == "0" {
            digits -= 1;
        }
        head.push('.');
    }
    while digits > 0 {
        head.push('0');
        digits -= 1;
    }
    head + &tail
}

/// Go's `strconv.IsPrint`, closely: see the module doc for where it is
/// approximate.
pub(super) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u32::from(c),
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2
        | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F
        | 0xD800..=0xF8FF | 0xFDD0..=0xFDEF | 0xFEFF | 0xFFF9..=0xFFFB | 0xFFFE..=0xFFFF
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xF0000..=0x10FFFF)
        && (u32::from(c) & 0xFFFE) != 0xFFFE
}

/// Go's `strconv.Quote` (`quote` `"`) or `QuoteRune` (`'`); with
/// `ascii_only`, `QuoteToASCII`.
pub(super) fn go_quote(s: &str, quote: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
            continue;
        }
        if if ascii_only {
            c.is_ascii() && is_print(c)
        } else {
            is_print(c)
        } {
            out.push(c);
            continue;
        }
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push(quote);
    out
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\t') || c == '`' || c == '\u{7f}' || c == '\u{feff}'))
}

#[cfg(test)]
mod tests;
