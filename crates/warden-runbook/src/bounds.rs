//! What a CEL expression may cost, decided before it runs. [`vet`] checks the parsed tree once
//! (node count, depth, comprehension nesting, only functions the standard library defines,
//! `matches` only with a literal pattern of bounded size); [`estimate`] bounds, before every
//! evaluation, the work it can do and the size of what it can build, from the tree and the sizes
//! of the actual `params` and `steps` it will see. This is cel-go's cost estimator idea with the
//! input sizes measured rather than declared: a comprehension over `steps.x.output...` costs as
//! many iterations as that list really has elements, nested ones multiply, and a value built from
//! inputs weighs at most what they weigh.
//!
//! Units. Weights are bytes: every value node counts [`NODE_BYTES`] (a scalar, or a list's or
//! map's header) plus the bytes of its strings. Cost is abstract units: one per tree node
//! evaluated and one per [`NODE_BYTES`] bytes that an operation copies, compares or scans (so any
//! allocation is paid for, and memory is bounded by the cost budget too). Measured on the `cel`
//! crate in a debug build over twenty shapes (comprehensions, nested ones, `map` building lists,
//! string concatenation, regexes), one unit took at most 0.23 µs, mostly 0.1-0.2 µs; copying and
//! scanning are charged far above what they take, so their units are much cheaper.
//!
//! Every estimate is an upper bound: where the tree does not say (a list indexed by a computed
//! key, a value of unknown type), the largest possibility is taken. The result is monotone in the
//! inputs' sizes, so an expression over budget with empty inputs is over budget with any inputs,
//! and is refused when the runbook is validated.

use cel::common::ast::{ComprehensionExpr, EntryExpr, Expr as Node, IdedExpr, LiteralValue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Bytes a value node weighs besides its strings: a scalar, or the header of a list or a map.
pub(crate) const NODE_BYTES: f64 = 16.0;

/// A regular expression's compiled program (its Thompson NFA) may not be larger than this.
/// Everything about a regex's cost grows with it: `cel` compiles the pattern at every call
/// (measured ~40 ns per NFA byte, debug build) and a match may visit every state per input byte.
/// Ordinary patterns (`^disk`, `\d+%`, `\w+\s\w+`) are 1-60 KiB; `(\w{10}){5}` is 860 KiB.
pub const MAX_REGEX_NFA_BYTES: usize = 256 << 10;

/// Cost of one `matches` call besides its NFA: parsing the pattern and setting up the engines
/// (measured ~50 µs, debug build).
const REGEX_CALL_COST: f64 = 250.0;
/// NFA bytes compiled per cost unit: `cel` compiles the pattern at every call, measured at
/// 0.04-0.2 µs per NFA byte (debug build) against ~0.25 µs per unit.
const REGEX_NFA_BYTES_PER_UNIT: f64 = 1.0;
/// NFA bytes per extra cost unit for each [`NODE_BYTES`] of text matched: the worst pattern
/// measured, `(a{50}){50}` (62 KiB), matched at ~90 ns per byte.
const REGEX_NFA_BYTES_PER_TEXT_UNIT: f64 = 4096.0;

/// The functions of `cel`'s standard library that runbook expressions may call (operators
/// included); a name not here is refused when the runbook is validated.
const FUNCTIONS: &[&str] = &[
    "_&&_",
    "_||_",
    "!_",
    "-_",
    "@not_strictly_false",
    "_?_:_",
    "_+_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "@in",
    "_[_]",
    "_[?_]",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "string",
    "int",
    "uint",
    "double",
    "bool",
    "bytes",
    "dyn",
    "type",
    "value",
    "hasValue",
    "or",
    "orValue",
];

/// `optional.of(x)` and its siblings: member calls on the identifier `optional`.
const OPTIONAL_FUNCTIONS: &[&str] = &["of", "ofNonZeroValue", "none"];

/// What [`vet`] found wrong with a tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refusal {
    Nodes(usize),
    Depth(usize),
    Comprehensions(usize),
    Function(String),
    Struct(String),
    PatternNotLiteral,
    Pattern { pattern: String, message: String },
    Unspecified,
}

/// The limits [`vet`] checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub nodes: usize,
    pub depth: usize,
    pub comprehensions: usize,
}

/// Literal patterns of `matches` calls and the size of their compiled NFA.
pub(crate) type Patterns = BTreeMap<String, usize>;

/// Check a tree against `limits`; returns the patterns it matches with.
pub(crate) fn vet(root: &IdedExpr, limits: Limits) -> Result<Patterns, Refusal> {
    let mut nodes = 0usize;
    let mut patterns = Patterns::new();
    let depth = walk(root, 0, &mut nodes, &mut patterns, limits)?;
    if depth > limits.depth {
        return Err(Refusal::Depth(depth));
    }
    Ok(patterns)
}

/// Depth of `e`, counting nodes; refuses as soon as a limit is passed (the tree is only as deep
/// as the source is long, [`super::expr::MAX_EXPR_BYTES`], and this runs on the parser's thread).
fn walk(
    e: &IdedExpr,
    comprehensions: usize,
    nodes: &mut usize,
    patterns: &mut Patterns,
    limits: Limits,
) -> Result<usize, Refusal> {
    *nodes += 1;
    if *nodes > limits.nodes {
        return Err(Refusal::Nodes(*nodes));
    }
    macro_rules! sub {
        ($child:expr, $nested:expr) => {
            walk($child, $nested, nodes, patterns, limits)?
        };
    }
    let below = match &e.expr {
        Node::Unspecified => return Err(Refusal::Unspecified),
        Node::Literal(_) | Node::Ident(_) => 0,
        Node::Select(s) => sub!(&s.operand, comprehensions),
        Node::List(l) => {
            let mut d = 0;
            for x in &l.elements {
                d = d.max(sub!(x, comprehensions));
            }
            d
        }
        Node::Map(m) => {
            let mut d = 0;
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::MapEntry(me) => {
                        d = d.max(sub!(&me.key, comprehensions));
                        d = d.max(sub!(&me.value, comprehensions));
                    }
                    EntryExpr::StructField(_) => return Err(Refusal::Struct(String::new())),
                }
            }
            d
        }
        Node::Struct(s) => return Err(Refusal::Struct(s.type_name.clone())),
        Node::Call(call) => {
            let optional = matches!(
                call.target.as_deref().map(|t| &t.expr),
                Some(Node::Ident(name)) if name == "optional"
            ) && OPTIONAL_FUNCTIONS.contains(&call.func_name.as_str());
            if !optional && !FUNCTIONS.contains(&call.func_name.as_str()) {
                return Err(Refusal::Function(call.func_name.clone()));
            }
            if call.func_name == "matches" {
                let pattern = match (call.target.as_deref(), call.args.as_slice()) {
                    (Some(_), [p]) | (None, [_, p]) => p,
                    _ => return Err(Refusal::PatternNotLiteral),
                };
                let Node::Literal(LiteralValue::String(p)) = &pattern.expr else {
                    return Err(Refusal::PatternNotLiteral);
                };
                let bytes = nfa_bytes(p.inner()).map_err(|message| Refusal::Pattern {
                    pattern: p.inner().to_string(),
                    message,
                })?;
                patterns.insert(p.inner().to_string(), bytes);
            }
            let mut d = 0;
            if let Some(t) = &call.target {
                d = sub!(t, comprehensions);
            }
            for a in &call.args {
                d = d.max(sub!(a, comprehensions));
            }
            d
        }
        Node::Comprehension(c) => {
            let nested = comprehensions + 1;
            if nested > limits.comprehensions {
                return Err(Refusal::Comprehensions(nested));
            }
            let mut d = sub!(&c.iter_range, comprehensions);
            for part in [&c.accu_init, &c.loop_cond, &c.loop_step, &c.result] {
                d = d.max(sub!(part, nested));
            }
            d
        }
    };
    Ok(below + 1)
}

/// The size of `pattern`'s compiled NFA, or why it is refused.
fn nfa_bytes(pattern: &str) -> Result<usize, String> {
    use regex_automata::nfa::thompson;
    // `cel` compiles with the `regex` crate: a pattern it would refuse is refused here too.
    regex::Regex::new(pattern).map_err(|e| e.to_string())?;
    thompson::Compiler::new()
        .configure(thompson::Config::new().nfa_size_limit(Some(MAX_REGEX_NFA_BYTES)))
        .build(pattern)
        .map(|nfa| nfa.memory_usage())
        .map_err(|_| format!("it compiles to more than {MAX_REGEX_NFA_BYTES} bytes"))
}

/// An upper bound on evaluating an expression: work done, bytes of the result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    pub cost: f64,
    pub bytes: f64,
}

/// What is known of a value's size and structure: the largest of everything it describes. For
/// an input (`params`, `steps`) it is measured; for the elements of a list it is their join, so
/// the element a comprehension binds weighs at most the heaviest element, not the whole list.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Shape {
    weight: f64,
    /// Elements of a list, entries of a map.
    len: f64,
    /// The join of a list's elements.
    items: Option<Box<Shape>>,
    /// The heaviest key of a map, as a string value.
    key_weight: Option<f64>,
    /// The join of a map's values.
    values: Option<Box<Shape>>,
    /// A map's values by key.
    fields: BTreeMap<String, Shape>,
}

fn join_opt(a: Option<Box<Shape>>, b: Option<&Shape>) -> Option<Box<Shape>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Box::new(a.join(b))),
        (Some(a), None) => Some(a),
        (None, b) => b.map(|b| Box::new(b.clone())),
    }
}

impl Shape {
    fn leaf(weight: f64) -> Shape {
        Shape {
            weight,
            ..Shape::default()
        }
    }

    /// The shape of a JSON value as `cel` will hold it.
    pub(crate) fn of(v: &Value) -> Shape {
        match v {
            Value::String(s) => Shape::leaf(NODE_BYTES + s.len() as f64),
            Value::Array(items) => {
                let mut joined: Option<Box<Shape>> = None;
                let mut weight = NODE_BYTES;
                for item in items {
                    let s = Shape::of(item);
                    weight += s.weight;
                    joined = join_opt(joined, Some(&s));
                }
                Shape {
                    weight,
                    len: items.len() as f64,
                    items: joined,
                    ..Shape::default()
                }
            }
            Value::Object(map) => {
                let mut shape = Shape {
                    weight: NODE_BYTES,
                    len: map.len() as f64,
                    ..Shape::default()
                };
                for (k, item) in map {
                    let s = Shape::of(item);
                    let key = NODE_BYTES + k.len() as f64;
                    shape.weight += key + s.weight;
                    shape.key_weight = Some(shape.key_weight.unwrap_or(0.0).max(key));
                    shape.values = join_opt(shape.values.take(), Some(&s));
                    shape.fields.insert(k.clone(), s);
                }
                shape
            }
            _ => Shape::leaf(NODE_BYTES),
        }
    }

    /// A shape covering both.
    fn join(mut self, o: &Shape) -> Shape {
        self.weight = self.weight.max(o.weight);
        self.len = self.len.max(o.len);
        self.items = join_opt(self.items.take(), o.items.as_deref());
        self.values = join_opt(self.values.take(), o.values.as_deref());
        self.key_weight = match (self.key_weight, o.key_weight) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (k, s) in &o.fields {
            let merged = match self.fields.remove(k) {
                Some(mine) => mine.join(s),
                None => s.clone(),
            };
            self.fields.insert(k.clone(), merged);
        }
        self
    }

    /// What a comprehension binds: a list's elements, a map's keys.
    fn element(&self) -> Shape {
        let keys = self.key_weight.map(Shape::leaf);
        match (self.items.as_deref(), keys) {
            (Some(i), Some(k)) => i.clone().join(&k),
            (Some(i), None) => i.clone(),
            (None, Some(k)) => k,
            // An empty list or map, or not a container at all: nothing is bound.
            (None, None) => Shape::leaf(NODE_BYTES),
        }
    }

    /// What `x[k]` may be: any element or value.
    fn child(&self) -> Shape {
        match (self.items.as_deref(), self.values.as_deref()) {
            (Some(i), Some(v)) => i.clone().join(v),
            (Some(s), None) | (None, Some(s)) => s.clone(),
            (None, None) => Shape::leaf(NODE_BYTES),
        }
    }
}

/// The variables an expression reads, as shapes; [`Inputs::empty`] stands for inputs not yet
/// known (at validation), bounded as empty maps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inputs<'a> {
    pub params: &'a Shape,
    pub steps: &'a Shape,
}

impl Inputs<'static> {
    pub(crate) fn empty() -> Inputs<'static> {
        static EMPTY: Shape = Shape {
            weight: NODE_BYTES,
            len: 0.0,
            items: None,
            key_weight: None,
            values: None,
            fields: BTreeMap::new(),
        };
        Inputs {
            params: &EMPTY,
            steps: &EMPTY,
        }
    }
}

/// `c + a·A`, where `A` is the weight of the innermost comprehension's accumulator: a loop step
/// is estimated once, as a function of what it has accumulated so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Lin {
    c: f64,
    a: f64,
}

impl Lin {
    const fn k(c: f64) -> Lin {
        Lin { c, a: 0.0 }
    }
    fn at(self, accumulated: f64) -> f64 {
        self.c + self.a * accumulated
    }
    fn plus(self, o: Lin) -> Lin {
        Lin {
            c: self.c + o.c,
            a: self.a + o.a,
        }
    }
    fn max(self, o: Lin) -> Lin {
        Lin {
            c: self.c.max(o.c),
            a: self.a.max(o.a),
        }
    }
    fn times(self, k: f64) -> Lin {
        Lin {
            c: self.c * k,
            a: self.a * k,
        }
    }
    fn is_constant(self) -> bool {
        self.a == 0.0
    }
}

/// One subexpression's bound.
#[derive(Debug, Clone)]
struct Est {
    cost: Lin,
    weight: Lin,
    /// Known to be a number, a bool or null: it weighs exactly one node.
    scalar: bool,
    /// Its structure, when known (its own weight is `weight`).
    shape: Option<Rc<Shape>>,
}

impl Est {
    fn scalar(cost: Lin) -> Est {
        Est {
            cost,
            weight: Lin::k(NODE_BYTES),
            scalar: true,
            shape: Some(Rc::new(Shape::leaf(NODE_BYTES))),
        }
    }

    fn of_shape(cost: Lin, shape: Shape) -> Est {
        Est {
            cost,
            weight: Lin::k(shape.weight),
            scalar: false,
            shape: Some(Rc::new(shape)),
        }
    }

    /// Its shape, when its structure is known and its weight does not grow with an accumulator.
    fn known_shape(&self) -> Option<Shape> {
        let s = self.shape.as_deref()?;
        self.weight.is_constant().then(|| Shape {
            weight: self.weight.c,
            ..s.clone()
        })
    }

    /// Elements a comprehension over this value may visit.
    fn elements(&self) -> f64 {
        let by_weight = (self.weight.c / NODE_BYTES - 1.0).max(0.0);
        self.shape
            .as_deref()
            .map_or(by_weight, |s| s.len.min(by_weight))
    }
}

#[derive(Debug, Clone)]
enum Binding {
    /// A comprehension variable: its weight, and its structure when known.
    Value(f64, Option<Rc<Shape>>),
    /// A comprehension's accumulator, its weight carried symbolically.
    Accumulator,
    /// An accumulator known to stay a number or a bool.
    ScalarAccumulator,
}

struct Estimator<'a> {
    inputs: Inputs<'a>,
    patterns: &'a Patterns,
    scope: Vec<(String, Binding)>,
}

/// Bound evaluating `root` against `inputs`; `Err` says why no bound exists.
pub(crate) fn estimate(
    root: &IdedExpr,
    inputs: Inputs<'_>,
    patterns: &Patterns,
) -> Result<Estimate, String> {
    let mut est = Estimator {
        inputs,
        patterns,
        scope: Vec::new(),
    };
    let e = est.node(root)?;
    if !(e.cost.is_constant() && e.weight.is_constant()) {
        return Err(
            "it depends on a comprehension's accumulator outside that comprehension".into(),
        );
    }
    // Turning the result into JSON reads all of it.
    Ok(Estimate {
        cost: e.cost.c + e.weight.c / NODE_BYTES,
        bytes: e.weight.c,
    })
}

impl Estimator<'_> {
    fn lookup(&self, name: &str) -> Option<Binding> {
        self.scope
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    fn node(&mut self, e: &IdedExpr) -> Result<Est, String> {
        let one = Lin::k(1.0);
        Ok(match &e.expr {
            Node::Literal(l) => {
                let bytes = match l {
                    LiteralValue::String(s) => s.inner().len(),
                    LiteralValue::Bytes(b) => b.inner().len(),
                    _ => return Ok(Est::scalar(one)),
                };
                Est::of_shape(one, Shape::leaf(NODE_BYTES + bytes as f64))
            }
            Node::Ident(name) => match self.lookup(name) {
                Some(Binding::Value(weight, shape)) => Est {
                    cost: one,
                    weight: Lin::k(weight),
                    scalar: false,
                    shape,
                },
                Some(Binding::Accumulator) => Est {
                    cost: one,
                    weight: Lin { c: 0.0, a: 1.0 },
                    scalar: false,
                    shape: None,
                },
                Some(Binding::ScalarAccumulator) => Est::scalar(one),
                None => match name.as_str() {
                    "params" => Est::of_shape(one, self.inputs.params.clone()),
                    "steps" => Est::of_shape(one, self.inputs.steps.clone()),
                    // A type name (`int`), or an unknown name (an error when evaluated).
                    _ => Est::scalar(one),
                },
            },
            Node::Select(s) => {
                let operand = self.node(&s.operand)?;
                let cost = operand.cost.plus(one);
                if s.test {
                    return Ok(Est::scalar(cost));
                }
                match operand.shape.as_deref() {
                    // A missing field is an error or `none` when evaluated.
                    Some(shape) => match shape.fields.get(&s.field) {
                        Some(field) => Est::of_shape(cost, field.clone()),
                        None => Est::scalar(cost),
                    },
                    None => Est {
                        cost,
                        scalar: false,
                        ..operand
                    },
                }
            }
            Node::List(l) => {
                let mut cost = one;
                let mut weight = Lin::k(NODE_BYTES);
                let mut items: Option<Option<Box<Shape>>> = Some(None);
                for x in &l.elements {
                    let x = self.node(x)?;
                    // Each element is copied into the list.
                    cost = cost.plus(x.cost).plus(x.weight.times(1.0 / NODE_BYTES));
                    weight = weight.plus(x.weight);
                    items = match (items, x.known_shape()) {
                        (Some(joined), Some(s)) => Some(join_opt(joined, Some(&s))),
                        _ => None,
                    };
                }
                Est {
                    cost,
                    weight,
                    scalar: false,
                    shape: items.map(|items| {
                        Rc::new(Shape {
                            len: l.elements.len() as f64,
                            items,
                            ..Shape::leaf(0.0)
                        })
                    }),
                }
            }
            Node::Map(m) => {
                let mut cost = one;
                let mut weight = Lin::k(NODE_BYTES);
                for entry in &m.entries {
                    let EntryExpr::MapEntry(me) = &entry.expr else {
                        return Err("a message field outside a message".into());
                    };
                    for part in [&me.key, &me.value] {
                        let x = self.node(part)?;
                        cost = cost.plus(x.cost).plus(x.weight.times(1.0 / NODE_BYTES));
                        weight = weight.plus(x.weight).plus(Lin::k(NODE_BYTES));
                    }
                }
                Est {
                    cost,
                    weight,
                    scalar: false,
                    shape: None,
                }
            }
            Node::Call(call) => {
                let mut args = Vec::with_capacity(call.args.len() + 1);
                if let Some(t) = &call.target {
                    args.push(self.node(t)?);
                }
                for a in &call.args {
                    args.push(self.node(a)?);
                }
                self.call(&call.func_name, &args, call)?
            }
            Node::Comprehension(c) => self.comprehension(c)?,
            Node::Struct(_) | Node::Unspecified => {
                return Err("a message or an unspecified node (refused when validated)".into());
            }
        })
    }

    fn call(
        &self,
        name: &str,
        args: &[Est],
        call: &cel::common::ast::CallExpr,
    ) -> Result<Est, String> {
        let base = args.iter().fold(Lin::k(1.0), |c, a| c.plus(a.cost));
        // Bytes the call reads or copies, in cost units.
        let scan = |idx: &[usize]| {
            idx.iter()
                .filter_map(|&i| args.get(i))
                .filter(|a| !a.scalar)
                .fold(Lin::default(), |c, a| {
                    c.plus(a.weight.times(1.0 / NODE_BYTES))
                })
        };
        let all: Vec<usize> = (0..args.len()).collect();
        Ok(match name {
            "_&&_"
            | "_||_"
            | "!_"
            | "-_"
            | "@not_strictly_false"
            | "_-_"
            | "_*_"
            | "_/_"
            | "_%_" => Est::scalar(base),
            "_==_" | "_!=_" | "_<_" | "_<=_" | "_>_" | "_>=_" | "@in" | "size" | "contains"
            | "startsWith" | "endsWith" | "hasValue" => Est::scalar(base.plus(scan(&all))),
            "_?_:_" => match args {
                [_, a, b] => Est {
                    cost: base,
                    weight: a.weight.max(b.weight),
                    scalar: a.scalar && b.scalar,
                    shape: match (a.known_shape(), b.known_shape()) {
                        (Some(x), Some(y)) => Some(Rc::new(x.join(&y))),
                        _ => None,
                    },
                },
                _ => Est::scalar(base),
            },
            "_+_" => match args {
                // Numbers (or an error): nothing grows.
                [a, b] if a.scalar || b.scalar => Est::scalar(base),
                [a, b] => Est {
                    cost: base.plus(scan(&all)),
                    weight: a.weight.plus(b.weight),
                    scalar: false,
                    shape: None,
                },
                _ => Est::scalar(base),
            },
            "_[_]" | "_[?_]" => match args {
                // The element weighs at most the container (`_[?_]` wraps it in an optional).
                // `cel` may copy the container into the call: it is paid for.
                [container, _] => match container.shape.as_deref() {
                    Some(s) if container.weight.is_constant() => {
                        let mut child = s.child();
                        child.weight += NODE_BYTES;
                        Est::of_shape(base.plus(scan(&all)), child)
                    }
                    _ => Est {
                        cost: base.plus(scan(&all)),
                        weight: container.weight.plus(Lin::k(NODE_BYTES)),
                        scalar: false,
                        shape: None,
                    },
                },
                _ => Est::scalar(base),
            },
            "matches" => {
                let (text, pattern) = match (call.target.as_deref(), call.args.as_slice()) {
                    (Some(_), [p]) | (None, [_, p]) => (args.first(), p),
                    _ => return Err("matches() without a pattern".into()),
                };
                let Node::Literal(LiteralValue::String(p)) = &pattern.expr else {
                    return Err("matches() with a computed pattern".into());
                };
                let nfa = match self.patterns.get(p.inner()) {
                    Some(n) => *n as f64,
                    None => nfa_bytes(p.inner())? as f64,
                };
                let text_units = text.map_or(Lin::k(1.0), |t| {
                    t.weight.times(1.0 / NODE_BYTES).plus(Lin::k(1.0))
                });
                let per_text_unit = 1.0 + nfa / REGEX_NFA_BYTES_PER_TEXT_UNIT;
                Est::scalar(
                    base.plus(Lin::k(REGEX_CALL_COST + nfa / REGEX_NFA_BYTES_PER_UNIT))
                        .plus(text_units.times(per_text_unit)),
                )
            }
            "int" | "uint" | "double" | "bool" => Est::scalar(base.plus(scan(&all))),
            // Conversions: `string(1.5e300)` is longer than its number.
            "string" | "bytes" | "dyn" | "type" => Est {
                cost: base.plus(scan(&all)),
                weight: args
                    .iter()
                    .fold(Lin::k(NODE_BYTES * 2.0), |w, a| w.plus(a.weight)),
                scalar: false,
                shape: None,
            },
            // The optional library (`optional.of(x)`, `o.orValue(y)`): at most its arguments.
            "of" | "ofNonZeroValue" | "none" | "value" | "or" | "orValue" => Est {
                cost: base.plus(scan(&all)),
                weight: args
                    .iter()
                    .fold(Lin::k(NODE_BYTES), |w, a| w.plus(a.weight)),
                scalar: false,
                shape: None,
            },
            other => return Err(format!("`{other}` is not a function runbooks offer")),
        })
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Result<Est, String> {
        let range = self.node(&c.iter_range)?;
        let init = self.node(&c.accu_init)?;
        let constant = |e: &Est| e.cost.is_constant() && e.weight.is_constant();
        if !constant(&range) || !constant(&init) {
            return Err("a comprehension over an enclosing accumulator".into());
        }
        let iterations = range.elements();
        let element = match range.shape.as_deref() {
            Some(s) => {
                let e = s.element();
                Binding::Value(e.weight, Some(Rc::new(e)))
            }
            // Nothing known but the whole: an element weighs at most all of it, and so does
            // anything selected from it.
            None => Binding::Value((range.weight.c - NODE_BYTES).max(NODE_BYTES), None),
        };
        let depth = self.scope.len();
        self.scope.push((c.iter_var.clone(), element.clone()));
        if let Some(v2) = &c.iter_var2 {
            self.scope.push((v2.clone(), element));
        }
        let parts = self.loop_parts(c, init.scalar);
        self.scope.truncate(depth);
        let (cond, step, result, appended) = parts?;

        // The accumulator after k steps: A(k+1) <= step.c + step.a * A(k), from A(0) = init.
        let (a0, sc, sa) = (init.weight.c, step.weight.c, step.weight.a);
        let accumulated = if sa <= 0.0 {
            a0.max(sc)
        } else if sa <= 1.0 {
            a0 + iterations * sc
        } else {
            (a0 + sc / (sa - 1.0)) * sa.powf(iterations)
        };
        // `map` and `filter` append to their accumulator in place (`cel`'s AppendStep): a step
        // costs what it appends, not a copy of everything so far.
        let step_cost = if appended.is_some() {
            step.cost.c
        } else {
            step.cost.at(accumulated)
        };
        let per_iteration = 1.0 + cond.cost.at(accumulated) + step_cost;
        // Binding each element copies it: together, the whole range once.
        let cost = range.cost.c
            + init.cost.c
            + iterations * per_iteration
            + range.weight.c / NODE_BYTES
            + result.cost.at(accumulated);
        let weight = result.weight.at(accumulated);
        Ok(Est {
            cost: Lin::k(cost),
            weight: Lin::k(weight),
            scalar: result.scalar,
            // A `map` or `filter` result is a list of what each step appended (when that is
            // known: a list whose elements' structure is not is no better known than its weight).
            shape: appended.flatten().map(|items| {
                Rc::new(Shape {
                    weight,
                    len: iterations,
                    items: Some(Box::new(items)),
                    ..Shape::default()
                })
            }),
        })
    }

    /// The condition, step and result of a comprehension whose variables are in scope, and for
    /// one that appends in place, the shape of what it appends (`Some(None)`: not known).
    #[allow(clippy::type_complexity)]
    fn loop_parts(
        &mut self,
        c: &ComprehensionExpr,
        init_scalar: bool,
    ) -> Result<(Est, Est, Est, Option<Option<Shape>>), String> {
        let depth = self.scope.len();
        // An accumulator that starts and stays a number or a bool (all, exists, exists_one)
        // weighs one node whatever happens; otherwise its weight is carried symbolically.
        let mut scalar = false;
        if init_scalar {
            self.scope
                .push((c.accu_var.clone(), Binding::ScalarAccumulator));
            scalar = self.node(&c.loop_step)?.scalar;
            self.scope.truncate(depth);
        }
        let accumulator = if scalar {
            Binding::ScalarAccumulator
        } else {
            Binding::Accumulator
        };
        self.scope.push((c.accu_var.clone(), accumulator));
        let cond = self.node(&c.loop_cond)?;
        let step = self.node(&c.loop_step)?;
        let result = self.node(&c.result)?;
        let appended = match appended_list(c) {
            Some(list) => {
                let list = self.node(list)?;
                Some(list.shape.and_then(|s| s.items.as_deref().cloned()))
            }
            None => None,
        };
        Ok((cond, step, result, appended))
    }
}

/// For the shape `cel` evaluates by appending in place (its `AppendStep`), the list literal each
/// step appends: an accumulator starting as `[]`, a literal loop condition, a step `@r + [x]` or
/// `c ? @r + [x] : @r`, and `@r` the result.
fn appended_list(c: &ComprehensionExpr) -> Option<&IdedExpr> {
    let accu = c.accu_var.as_str();
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Node::Ident(n) if n == accu);
    fn appends<'e>(e: &'e IdedExpr, is_accu: &dyn Fn(&IdedExpr) -> bool) -> Option<&'e IdedExpr> {
        match &e.expr {
            Node::Call(call) if call.func_name == "_+_" && call.target.is_none() => {
                match call.args.as_slice() {
                    [l, r] if is_accu(l) && matches!(r.expr, Node::List(_)) => Some(r),
                    _ => None,
                }
            }
            _ => None,
        }
    }
    let empty_init = matches!(&c.accu_init.expr, Node::List(l) if l.elements.is_empty());
    if !empty_init || !is_accu(&c.result) || !matches!(c.loop_cond.expr, Node::Literal(_)) {
        return None;
    }
    match &c.loop_step.expr {
        Node::Call(call) if call.func_name == "_?_:_" && call.target.is_none() => {
            match call.args.as_slice() {
                [_, step, otherwise] if is_accu(otherwise) => appends(step, &is_accu),
                _ => None,
            }
        }
        _ => appends(&c.loop_step, &is_accu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cost(source: &str, steps: &Value) -> f64 {
        let program = cel::Program::compile(source).expect(source);
        let limits = Limits {
            nodes: 10_000,
            depth: 1000,
            comprehensions: 10,
        };
        let patterns = vet(program.expression(), limits).expect("vetted");
        let shape = Shape::of(steps);
        let inputs = Inputs {
            params: Inputs::empty().params,
            steps: &shape,
        };
        estimate(program.expression(), inputs, &patterns)
            .expect("bounded")
            .cost
    }

    fn metrics(n: usize) -> Value {
        let list: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("m{i}"), "value": i}))
            .collect();
        json!({"x": {"output": list}})
    }

    #[test]
    fn costs_grow_with_the_inputs_as_the_loops_do() {
        let one = "steps.x.output.exists(a, a.value < 0)";
        let two = "steps.x.output.all(a, steps.x.output.exists(b, a.value == b.value))";
        let (small, big) = (metrics(100), metrics(1000));
        let linear = cost(one, &big) / cost(one, &small);
        let quadratic = cost(two, &big) / cost(two, &small);
        assert!((8.0..12.0).contains(&linear), "{linear}");
        assert!((80.0..120.0).contains(&quadratic), "{quadratic}");
        // `map` appends in place: linear too, though its accumulator grows.
        let map = "size(steps.x.output.map(a, a.name)) > 0";
        let ratio = cost(map, &big) / cost(map, &small);
        assert!((8.0..12.0).contains(&ratio), "{ratio}");
        // A binding weighs one element, not the list: selecting from it stays cheap.
        let per_element = cost(one, &big) / 1000.0;
        assert!(per_element < 40.0, "{per_element}");
    }

    /// Where the structure is lost (a concatenation), what is selected from an element is
    /// bounded by the whole, never by nothing.
    #[test]
    fn what_is_not_known_is_bounded_by_the_whole() {
        let steps = metrics(100);
        let bytes = |source: &str| {
            let program = cel::Program::compile(source).expect(source);
            let limits = Limits {
                nodes: 10_000,
                depth: 1000,
                comprehensions: 10,
            };
            let patterns = vet(program.expression(), limits).expect("vetted");
            let shape = Shape::of(&steps);
            let inputs = Inputs {
                params: Inputs::empty().params,
                steps: &shape,
            };
            estimate(program.expression(), inputs, &patterns)
                .expect("bounded")
                .bytes
        };
        let known = bytes("steps.x.output.map(a, a.name)");
        let lost = bytes("(steps.x.output + []).map(a, a.name)");
        let whole = Shape::of(&steps["x"]["output"]).weight;
        assert!(known >= 100.0 * NODE_BYTES, "{known}");
        assert!(lost >= whole, "{lost} < {whole}");
    }

    #[test]
    fn vetting_refuses_what_cannot_be_bounded() {
        let limits = Limits {
            nodes: 100,
            depth: 10,
            comprehensions: 1,
        };
        let vetted = |s: &str| vet(cel::Program::compile(s).expect(s).expression(), limits);
        assert_eq!(vetted("1+1+1+1+1+1+1+1+1+1+1"), Err(Refusal::Depth(11)));
        assert_eq!(
            vetted("[1].all(a, [2].all(b, true))"),
            Err(Refusal::Comprehensions(2))
        );
        assert_eq!(vetted("foo(1)"), Err(Refusal::Function("foo".into())));
        assert_eq!(
            vetted("'a'.matches('a' + 'b')"),
            Err(Refusal::PatternNotLiteral)
        );
        assert!(matches!(
            vetted("'a'.matches('(')"),
            Err(Refusal::Pattern { .. })
        ));
        assert!(vetted("optional.of(1).orValue(2) == 1 && 'a'.matches('^a')").is_ok());
    }
}
