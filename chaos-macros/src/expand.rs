//! Expansion of `#[failover_test]` into a `#[test]` that calls the harness.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Type};

use crate::args::{self, Args, Rpo, Target};

/// Attributes that make a function a test by themselves.
const TEST_ATTRS: &[&str] = &["test", "rstest", "failover_test", "test_case", "test_log"];

/// Entry point: never fails; errors become `compile_error!` next to the
/// unchanged function, so editors keep working.
pub fn failover_test(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = syn::Error::new(
                e.span(),
                "#[failover_test] goes on `async fn name(ctx: &mut FailoverCtx)`",
            )
            .to_compile_error();
            return quote!(#err #item);
        }
    };
    let parsed = args::parse(args);
    let checked = check_signature(&func);
    match (parsed, checked) {
        (Ok(args), Ok(())) => generate(&args, func),
        (a, c) => {
            let mut errors = a.err();
            if let Err(e) = c {
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
            }
            let errors = errors.map(|e| e.to_compile_error());
            quote! {
                #errors
                #[allow(dead_code)]
                #func
            }
        }
    }
}

/// Checks the function's shape, collecting every problem.
fn check_signature(func: &ItemFn) -> Result<(), syn::Error> {
    let mut errors: Vec<syn::Error> = Vec::new();
    let sig = &func.sig;
    let expected = "expected `async fn name(ctx: &mut FailoverCtx)`";
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            format!("#[failover_test] functions must be async: {expected}"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "#[failover_test] functions cannot be generic",
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new(
            c.span(),
            "#[failover_test] functions cannot be const",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new(
            u.span(),
            "#[failover_test] functions cannot be unsafe",
        ));
    }
    match sig.inputs.len() {
        1 => match &sig.inputs[0] {
            FnArg::Receiver(r) => errors.push(syn::Error::new(
                r.span(),
                format!("#[failover_test] functions take no `self`: {expected}"),
            )),
            FnArg::Typed(pat) => {
                if !is_mut_ref_to_ctx(&pat.ty) {
                    errors.push(syn::Error::new(
                        pat.ty.span(),
                        format!("the parameter must be `&mut FailoverCtx`: {expected}"),
                    ));
                }
            }
        },
        0 => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("missing the context parameter: {expected}"),
        )),
        _ => errors.push(syn::Error::new(
            sig.inputs.iter().nth(1).map_or(sig.span(), Spanned::span),
            format!("too many parameters: {expected}"),
        )),
    }
    for attr in &func.attrs {
        let path = attr.path();
        if let Some(last) = path.segments.last()
            && TEST_ATTRS.contains(&last.ident.to_string().as_str())
        {
            errors.push(syn::Error::new(
                path.span(),
                format!(
                    "remove `#[{}]`: #[failover_test] already makes this function a test",
                    quote!(#path).to_string().replace(' ', "")
                ),
            ));
        }
    }
    match errors.into_iter().reduce(|mut a, b| {
        a.combine(b);
        a
    }) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn is_mut_ref_to_ctx(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => match &*r.elem {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "FailoverCtx"),
            _ => false,
        },
        Type::Paren(p) => is_mut_ref_to_ctx(&p.elem),
        _ => false,
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Generates the test. The body becomes an inner function of an always-compiled
/// hidden function (so it is type-checked even outside `cargo test`), called by
/// the `#[test]` function through `::chaos_core::__private`.
fn generate(args: &Args, func: ItemFn) -> TokenStream {
    let name = &func.sig.ident;
    let vis = &func.vis;
    let runner = format_ident!("__chaos_failover_test_{}", name);
    let (outer_attrs, inner_attrs): (Vec<_>, Vec<_>) = func
        .attrs
        .iter()
        .partition(|a| !a.path().is_ident("allow") && !a.path().is_ident("expect"));
    let mut inner = func.clone();
    inner.attrs = inner_attrs.into_iter().cloned().collect();

    let private = quote!(::chaos_core::__private);
    let mut spec = quote!(#private::TestSpec::new(::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name))));
    let dur = |d: std::time::Duration| {
        let n = nanos(d);
        quote!(::core::time::Duration::from_nanos(#n))
    };
    if let Some(d) = args.max_rto {
        let d = dur(d);
        spec = quote!(#spec.max_rto(#d));
    }
    match args.rpo {
        Some(Rpo::Writes(n)) => spec = quote!(#spec.max_lost_writes(#n)),
        Some(Rpo::Window(w)) => {
            let d = dur(w);
            spec = quote!(#spec.max_lost_window(#d));
        }
        None => {}
    }
    match args.target {
        Some(Target::Env) => spec = quote!(#spec.target_from_env()),
        Some(Target::Local) | None => {}
    }
    if let Some(d) = args.timeout {
        let d = dur(d);
        spec = quote!(#spec.timeout(#d));
    }
    if let Some(n) = args.writers {
        spec = quote!(#spec.writers(#n));
    }
    if let Some(d) = args.interval {
        let d = dur(d);
        spec = quote!(#spec.interval(#d));
    }
    if let Some(n) = args.nodes {
        let n = n as usize;
        spec = quote!(#spec.nodes(#n));
    }
    if let Some(name) = &args.slo_on {
        spec = quote!(#spec.slo_on(#name));
    }
    if let Some(n) = args.repeat {
        let n = n as usize;
        spec = quote!(#spec.repeat(#n));
    }
    if let Some(d) = args.max_rto_p95 {
        let d = dur(d);
        spec = quote!(#spec.max_rto_p95(#d));
    }
    // The body's value goes through `body_result`, spanned at the return type,
    // so that an unsupported return type is reported there, once.
    let result = match &func.sig.output {
        syn::ReturnType::Default => quote!(#private::body_result(#name(ctx).await)),
        syn::ReturnType::Type(_, ty) => {
            quote_spanned! {ty.span()=> #private::body_result::<#ty>(#name(ctx).await) }
        }
    };
    let call = quote! {
        #private::run_test(#spec, |ctx| ::std::boxed::Box::pin(async move { #result }))
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_snake_case, dead_code)]
        #vis fn #runner() {
            #inner
            #call
        }

        #(#outer_attrs)*
        #[::core::prelude::v1::test]
        #vis fn #name() {
            #runner()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: TokenStream, item: TokenStream) -> String {
        failover_test(args, item).to_string()
    }

    #[test]
    fn generates_a_test_calling_the_harness() {
        let out = expand(
            quote!(max_rto = "10s", rpo = 0),
            quote!(
                async fn survives(ctx: &mut FailoverCtx) -> chaos_core::Result<()> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains(":: core :: prelude :: v1 :: test"), "{out}");
        assert!(out.contains("fn __chaos_failover_test_survives"), "{out}");
        assert!(
            out.contains(":: chaos_core :: __private :: run_test"),
            "{out}"
        );
        assert!(
            out.contains("max_rto (:: core :: time :: Duration :: from_nanos (10000000000u64))"),
            "{out}"
        );
        assert!(out.contains("max_lost_writes (0u64)"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn forwards_other_attributes_to_the_test() {
        let out = expand(
            quote!(),
            quote!(
                #[should_panic(expected = "boom")]
                async fn t(ctx: &mut FailoverCtx) {}
            ),
        );
        let test_fn = out.find("# [should_panic").expect("forwarded");
        assert!(
            test_fn > out.find("fn __chaos_failover_test_t").expect("runner"),
            "{out}"
        );
    }

    #[test]
    fn bad_input_keeps_the_function_and_reports_every_error() {
        let out = expand(
            quote!(bogus = 1),
            quote!(
                #[tokio::test]
                fn t(x: u32, y: u32) {}
            ),
        );
        assert!(
            out.contains("fn t (x : u32 , y : u32)"),
            "function kept: {out}"
        );
        for needle in [
            "unknown argument `bogus`",
            "must be async",
            "too many parameters",
            "remove `#[tokio::test]`",
        ] {
            assert!(out.contains(needle), "{needle} missing: {out}");
        }
    }

    #[test]
    fn rejects_a_wrong_parameter_type() {
        let out = expand(
            quote!(),
            quote!(
                async fn t(ctx: FailoverCtx) {}
            ),
        );
        assert!(
            out.contains("the parameter must be `&mut FailoverCtx`"),
            "{out}"
        );
        let out = expand(
            quote!(),
            quote!(
                async fn t() {}
            ),
        );
        assert!(out.contains("missing the context parameter"), "{out}");
    }
}
