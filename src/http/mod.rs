//! The HTTP edge of the update listener: what every endpoint on it shares, and nothing of
//! what any one of them does.
//!
//! * [`Router`]: the route table's type. A path is matched once (`matchit`, axum's router),
//!   then its method: a path with no route for the method is answered 405 with the methods it
//!   has (`Allow`), from the table itself, so no handler lists paths or methods again. The
//!   table of the update listener is `routes.rs`, above the handlers (dyndns, ACME, the account
//!   pages), which never import each other.
//! * [`response`]: the answers (`text`, `json`, `html`, `redirect`, `method_not_allowed`) and
//!   the pages' security headers.
//! * [`body`]: request bodies, bounded in size and time.
//! * [`client`]: who is asking, behind the operator's trusted proxies.

pub mod body;
pub mod client;
pub mod response;
pub mod status;

use std::collections::HashMap;

use hyper::Method;

/// A route table: paths (with `{name}` segments and a final `{*rest}`) and, per path, the
/// route of each method. `R` names what to run (an enum of the listener's endpoints).
#[derive(Debug)]
pub struct Router<R> {
    /// Path patterns, to the index of their methods.
    paths: matchit::Router<usize>,
    /// Each pattern's index.
    patterns: HashMap<String, usize>,
    /// The methods of each pattern, with their routes.
    methods: Vec<Vec<(Method, R)>>,
}

/// What a request's method and path find in a [`Router`].
#[derive(Debug, PartialEq, Eq)]
pub enum Found<R> {
    /// The route, with the values of the path's `{name}` segments in order.
    Route(R, Vec<String>),
    /// The path exists, not with this method: these methods, for `Allow`.
    NotAllowed(String),
    /// No such path.
    NotFound,
}

impl<R: Clone> Default for Router<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Clone> Router<R> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            paths: matchit::Router::new(),
            patterns: HashMap::new(),
            methods: Vec::new(),
        }
    }

    /// Adds `route` for `methods` at `pattern`. Panics on a pattern that conflicts with
    /// another: the table is fixed at start, and a conflict is a programming error.
    #[must_use]
    pub fn route(mut self, pattern: &str, methods: &[Method], route: R) -> Self {
        let index = match self.patterns.get(pattern) {
            Some(index) => *index,
            None => {
                let index = self.methods.len();
                self.paths
                    .insert(pattern, index)
                    .unwrap_or_else(|error| panic!("route {pattern}: {error}"));
                self.patterns.insert(pattern.to_string(), index);
                self.methods.push(Vec::new());
                index
            }
        };
        for method in methods {
            assert!(
                self.methods[index].iter().all(|(had, _)| had != method),
                "route {pattern}: {method} twice"
            );
            self.methods[index].push((method.clone(), route.clone()));
        }
        self
    }

    /// The route of `method` at `path`. Trailing slashes are not significant (`/nic/update/`
    /// is `/nic/update`: routers and users add them).
    pub fn find(&self, method: &Method, path: &str) -> Found<R> {
        let trimmed = path.trim_end_matches('/');
        let path = if trimmed.is_empty() { "/" } else { trimmed };
        let Ok(matched) = self.paths.at(path) else {
            return Found::NotFound;
        };
        let methods = &self.methods[*matched.value];
        match methods.iter().find(|(allowed, _)| allowed == method) {
            Some((_, route)) => Found::Route(
                route.clone(),
                matched
                    .params
                    .iter()
                    .map(|(_, value)| value.to_string())
                    .collect(),
            ),
            None => Found::NotAllowed(
                methods
                    .iter()
                    .map(|(method, _)| method.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn paths_then_methods_and_405_names_what_the_path_has() {
        let router = Router::new()
            .route("/nic/update", &[Method::GET, Method::POST], 1)
            .route("/dashboard/login", &[Method::GET, Method::HEAD], 2)
            .route("/dashboard/login", &[Method::POST], 3)
            .route("/dashboard/domains/{fqdn}/history", &[Method::GET], 4)
            .route("/dashboard/static/{*file}", &[Method::GET], 5);
        assert_eq!(
            router.find(&Method::GET, "/nic/update/"),
            Found::Route(1, vec![])
        );
        assert_eq!(
            router.find(&Method::PUT, "/nic/update"),
            Found::NotAllowed("GET, POST".into())
        );
        assert_eq!(
            router.find(&Method::POST, "/dashboard/login"),
            Found::Route(3, vec![])
        );
        assert_eq!(
            router.find(&Method::DELETE, "/dashboard/login"),
            Found::NotAllowed("GET, HEAD, POST".into())
        );
        assert_eq!(
            router.find(&Method::GET, "/dashboard/domains/home.dyn.example/history"),
            Found::Route(4, vec!["home.dyn.example".into()])
        );
        assert_eq!(
            router.find(&Method::GET, "/dashboard/static/app.js"),
            Found::Route(5, vec!["app.js".into()])
        );
        assert_eq!(router.find(&Method::GET, "/nic"), Found::NotFound);
        assert_eq!(router.find(&Method::GET, "/"), Found::NotFound);
    }
}
