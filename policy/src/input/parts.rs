//! The parts of the input document the builder can leave out, and which of
//! them a static path into `input` reaches.
//!
//! A policy that only ever reads `input.attributes.source.principal` and
//! `input.attributes.request.http.path` gets a document with just those two
//! leaves (and the objects above them): the headers object, the parsed
//! path and query, the body... are never built. What a part holds is
//! either wholly built or absent; a path that reaches above a part (e.g.
//! `input.attributes.source`) needs every part below it.

/// A set of input parts (a bit per leaf of the document). The default is
/// the empty set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InputParts(u32);

/// (bit, path of the part below `input`)
const PARTS: &[(u32, &[&str])] = &[
    (
        InputParts::SOURCE_PRINCIPAL.0,
        &["attributes", "source", "principal"],
    ),
    (
        InputParts::SOURCE_ADDRESS.0,
        &["attributes", "source", "address"],
    ),
    (
        InputParts::DESTINATION_PRINCIPAL.0,
        &["attributes", "destination", "principal"],
    ),
    (
        InputParts::DESTINATION_ADDRESS.0,
        &["attributes", "destination", "address"],
    ),
    (InputParts::ID.0, &["attributes", "request", "http", "id"]),
    (
        InputParts::METHOD.0,
        &["attributes", "request", "http", "method"],
    ),
    (
        InputParts::PATH.0,
        &["attributes", "request", "http", "path"],
    ),
    (
        InputParts::HOST.0,
        &["attributes", "request", "http", "host"],
    ),
    (
        InputParts::SCHEME.0,
        &["attributes", "request", "http", "scheme"],
    ),
    (
        InputParts::PROTOCOL.0,
        &["attributes", "request", "http", "protocol"],
    ),
    (
        InputParts::HEADERS.0,
        &["attributes", "request", "http", "headers"],
    ),
    (
        InputParts::BODY.0,
        &["attributes", "request", "http", "body"],
    ),
    (InputParts::PARSED_PATH.0, &["parsed_path"]),
    (InputParts::PARSED_QUERY.0, &["parsed_query"]),
    (InputParts::PARSED_BODY.0, &["parsed_body"]),
    (InputParts::TRUNCATED_BODY.0, &["truncated_body"]),
    (InputParts::JWT_CLAIMS.0, &["usher"]),
    (InputParts::VERSION.0, &["version"]),
];

impl InputParts {
    pub const NONE: InputParts = InputParts(0);
    pub const SOURCE_PRINCIPAL: InputParts = InputParts(1 << 0);
    pub const SOURCE_ADDRESS: InputParts = InputParts(1 << 1);
    pub const DESTINATION_PRINCIPAL: InputParts = InputParts(1 << 2);
    pub const DESTINATION_ADDRESS: InputParts = InputParts(1 << 3);
    pub const ID: InputParts = InputParts(1 << 4);
    pub const METHOD: InputParts = InputParts(1 << 5);
    pub const PATH: InputParts = InputParts(1 << 6);
    pub const HOST: InputParts = InputParts(1 << 7);
    pub const SCHEME: InputParts = InputParts(1 << 8);
    pub const PROTOCOL: InputParts = InputParts(1 << 9);
    pub const HEADERS: InputParts = InputParts(1 << 10);
    pub const BODY: InputParts = InputParts(1 << 11);
    pub const PARSED_PATH: InputParts = InputParts(1 << 12);
    pub const PARSED_QUERY: InputParts = InputParts(1 << 13);
    pub const PARSED_BODY: InputParts = InputParts(1 << 14);
    pub const TRUNCATED_BODY: InputParts = InputParts(1 << 15);
    /// `input.usher` (the claims of a JWT usher verified).
    pub const JWT_CLAIMS: InputParts = InputParts(1 << 16);
    pub const VERSION: InputParts = InputParts(1 << 17);
    pub const ALL: InputParts = InputParts((1 << 18) - 1);

    pub const fn contains(self, other: InputParts) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: InputParts) -> bool {
        self.0 & other.0 != 0
    }

    #[must_use]
    pub const fn union(self, other: InputParts) -> InputParts {
        InputParts(self.0 | other.0)
    }

    /// The parts of `self` not in `other`.
    #[must_use]
    pub const fn without(self, other: InputParts) -> InputParts {
        InputParts(self.0 & !other.0)
    }

    pub const fn is_all(self) -> bool {
        self.0 == InputParts::ALL.0
    }

    /// The parts a read of `input.<path>` can see: those at, above or below
    /// it. `[]` (the whole `input`) is every part; a path that leads to no
    /// part (`input.foo`) none.
    pub(crate) fn reached_by<S: AsRef<str>>(path: &[S]) -> InputParts {
        let mut parts = InputParts::NONE;
        for (bit, part) in PARTS {
            let common = path.len().min(part.len());
            let on_the_way = path
                .iter()
                .zip(part.iter())
                .take(common)
                .all(|(a, b)| a.as_ref() == *b);
            if on_the_way {
                parts = parts.union(InputParts(*bit));
            }
        }
        parts
    }

    /// The paths of the parts in the set (`attributes.source.principal`...).
    pub fn paths(self) -> Vec<String> {
        PARTS
            .iter()
            .filter(|(bit, _)| self.contains(InputParts(*bit)))
            .map(|(_, path)| path.join("."))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_reaches_the_parts_at_above_and_below_it() {
        let p = |s: &str| -> Vec<String> {
            if s.is_empty() {
                vec![]
            } else {
                s.split('.').map(str::to_string).collect()
            }
        };
        assert_eq!(InputParts::reached_by(&p("")), InputParts::ALL);
        assert_eq!(
            InputParts::reached_by(&p("attributes.source.principal")),
            InputParts::SOURCE_PRINCIPAL
        );
        assert_eq!(
            InputParts::reached_by(&p("attributes.source")),
            InputParts::SOURCE_PRINCIPAL.union(InputParts::SOURCE_ADDRESS)
        );
        assert_eq!(
            InputParts::reached_by(&p("attributes.request.http.headers.x-user")),
            InputParts::HEADERS
        );
        assert_eq!(
            InputParts::reached_by(&p("parsed_path")),
            InputParts::PARSED_PATH
        );
        assert_eq!(InputParts::reached_by(&p("nothing.here")), InputParts::NONE);
        let attributes = InputParts::reached_by(&p("attributes"));
        assert!(attributes.contains(InputParts::HEADERS));
        assert!(!attributes.intersects(InputParts::PARSED_PATH.union(InputParts::VERSION)));
        assert_eq!(InputParts::ALL.paths().len(), PARTS.len());
    }
}
