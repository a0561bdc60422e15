//! Trace context on the wire.
//!
//! Accepted on the way in: W3C `traceparent` (+ `tracestate`), then B3 in
//! its single-header (`b3`) and multi-header (`x-b3-*`) forms. Written on
//! the way out: always `traceparent`; B3 headers are rewritten too when the
//! request came with them, so that a B3-only app downstream still nests its
//! spans under usher's.
//!
//! Parsing is by hand over bytes: no allocation, and every malformed value
//! simply counts as "no context" (a fresh trace starts).

use http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub static B3: HeaderName = HeaderName::from_static("b3");
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which B3 form a request carried, so the same form goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Form {
    None,
    Single,
    Multi,
}

/// The trace context a request arrived with.
#[derive(Clone, Debug, PartialEq)]
pub struct Extracted {
    pub parent: Option<SpanContext>,
    pub b3: B3Form,
}

/// Reads the caller's trace context: W3C first, then B3 single, then B3
/// multi. Invalid values are ignored.
pub fn extract(headers: &HeaderMap) -> Extracted {
    let b3 = if headers.contains_key(&B3) {
        B3Form::Single
    } else if headers.contains_key(&B3_TRACE_ID) {
        B3Form::Multi
    } else {
        B3Form::None
    };
    let parent = headers
        .get(&TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
        .or_else(|| match b3 {
            B3Form::Single => headers.get(&B3).and_then(|v| parse_b3_single(v.as_bytes())),
            B3Form::Multi => parse_b3_multi(headers),
            B3Form::None => None,
        });
    Extracted { parent, b3 }
}

/// Writes `cx` as the context of the next hop: `traceparent` always, the
/// B3 form the request came with, and drops a `tracestate` that no valid
/// `traceparent` vouched for (W3C: it must not be passed on alone).
pub fn inject(headers: &mut HeaderMap, cx: &SpanContext, incoming: &Extracted) {
    let trace = cx.trace_id().to_bytes();
    let span = cx.span_id().to_bytes();
    let sampled = cx.is_sampled();

    let mut tp = [0u8; 55];
    tp[..3].copy_from_slice(b"00-");
    hex_into(&trace, &mut tp[3..35]);
    tp[35] = b'-';
    hex_into(&span, &mut tp[36..52]);
    tp[52] = b'-';
    tp[53] = b'0';
    tp[54] = if sampled { b'1' } else { b'0' };
    if let Ok(v) = HeaderValue::from_bytes(&tp) {
        headers.insert(TRACEPARENT.clone(), v);
    }
    if incoming.parent.is_none() {
        headers.remove(&TRACESTATE);
    }

    match incoming.b3 {
        B3Form::None => {}
        B3Form::Single => {
            let mut b = [0u8; 51];
            hex_into(&trace, &mut b[..32]);
            b[32] = b'-';
            hex_into(&span, &mut b[33..49]);
            b[49] = b'-';
            b[50] = if sampled { b'1' } else { b'0' };
            if let Ok(v) = HeaderValue::from_bytes(&b) {
                headers.insert(B3.clone(), v);
            }
        }
        B3Form::Multi => {
            let mut t = [0u8; 32];
            hex_into(&trace, &mut t);
            let mut s = [0u8; 16];
            hex_into(&span, &mut s);
            if let (Ok(t), Ok(s)) = (HeaderValue::from_bytes(&t), HeaderValue::from_bytes(&s)) {
                headers.insert(B3_TRACE_ID.clone(), t);
                headers.insert(B3_SPAN_ID.clone(), s);
            }
            headers.remove(&B3_PARENT_SPAN_ID);
            headers.remove(&B3_FLAGS);
            headers.insert(
                B3_SAMPLED.clone(),
                HeaderValue::from_static(if sampled { "1" } else { "0" }),
            );
        }
    }
}

/// `version-traceid-spanid-flags`, per W3C Trace Context level 1. Future
/// versions are read by the version-00 prefix, as the spec asks.
pub fn parse_traceparent(v: &[u8]) -> Option<SpanContext> {
    if v.len() < 55 {
        return None;
    }
    let version = parse_hex_u8(&v[0..2])?;
    if version == 0xff
        || (version == 0 && v.len() != 55)
        || (version > 0 && v.len() > 55 && v[55] != b'-')
    {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace = parse_trace_id(&v[3..35])?;
    let span = parse_span_id(&v[36..52])?;
    let flags = parse_hex_u8(&v[53..55])?;
    Some(remote(trace, span, flags & 1 == 1))
}

/// `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`. A bare sampling
/// decision (`b3: 0`) carries no context.
pub fn parse_b3_single(v: &[u8]) -> Option<SpanContext> {
    let mut parts = v.split(|&b| b == b'-');
    let trace = parse_b3_trace_id(parts.next()?)?;
    let span = parse_span_id(parts.next()?)?;
    let sampled = match parts.next() {
        None => true, // deferred: usher's sampler has the parent's say
        Some(b"1") | Some(b"d") => true,
        Some(b"0") => false,
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        parse_span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(remote(trace, span, sampled))
}

fn parse_b3_multi(headers: &HeaderMap) -> Option<SpanContext> {
    let trace = parse_b3_trace_id(headers.get(&B3_TRACE_ID)?.as_bytes())?;
    let span = parse_span_id(headers.get(&B3_SPAN_ID)?.as_bytes())?;
    let debug = headers.get(&B3_FLAGS).map(|v| v.as_bytes()) == Some(b"1");
    let sampled = match headers.get(&B3_SAMPLED).map(|v| v.as_bytes()) {
        None => true,
        Some(b"1") | Some(b"true") => true,
        Some(b"0") | Some(b"false") => debug,
        Some(_) => return None,
    };
    Some(remote(trace, span, sampled || debug))
}

fn remote(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanContext::new(trace, span, flags, true, TraceState::NONE)
}

/// B3 trace ids are 64 or 128 bits; a 64-bit id is the low half.
fn parse_b3_trace_id(v: &[u8]) -> Option<TraceId> {
    match v.len() {
        32 => parse_trace_id(v),
        16 => {
            let mut padded = [b'0'; 32];
            padded[16..].copy_from_slice(v);
            parse_trace_id(&padded)
        }
        _ => None,
    }
}

fn parse_trace_id(v: &[u8]) -> Option<TraceId> {
    let mut out = [0u8; 16];
    hex_decode(v, &mut out)?;
    let id = TraceId::from_bytes(out);
    (id != TraceId::INVALID).then_some(id)
}

fn parse_span_id(v: &[u8]) -> Option<SpanId> {
    let mut out = [0u8; 8];
    hex_decode(v, &mut out)?;
    let id = SpanId::from_bytes(out);
    (id != SpanId::INVALID).then_some(id)
}

fn parse_hex_u8(v: &[u8]) -> Option<u8> {
    let mut out = [0u8; 1];
    hex_decode(v, &mut out)?;
    Some(out[0])
}

/// Lower-case hex only, as both W3C and B3 require.
fn hex_decode(v: &[u8], out: &mut [u8]) -> Option<()> {
    if v.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(v.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests;
