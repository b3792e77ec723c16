/// Counts the words of `text` longer than `min`, in a zygote worker.
///
/// # Errors
///
/// Runs in a child process through `#[isolated]`: fails with `MemIsolateError` if the
/// child could not be started, panicked, crashed, timed out or sent no result.
pub fn count_long_words(
    text: &str,
    min: usize,
) -> ::core::result::Result<usize, ::mem_isolate::__private::MemIsolateError> {
    let __isolate = ::mem_isolate::__private::Isolate::new()
        .timeout(::core::time::Duration::from_nanos(5000000000u64));
    let __body: fn(_) -> _ = |
        (__arg0, min): (::std::borrow::Cow<'_, str>, usize),
    | -> usize {
        let text: &str = &*__arg0;
        { text.split_whitespace().filter(|w| w.len() > min).count() }
    };
    {
        fn __call<F, T, A0, A1>(
            isolate: &::mem_isolate::__private::Isolate,
            function: F,
            a0: A0,
            a1: A1,
        ) -> ::core::result::Result<T, ::mem_isolate::__private::MemIsolateError>
        where
            F: ::core::convert::Into<fn((A0, A1)) -> T>,
            T: ::mem_isolate::__private::Serialize
                + ::mem_isolate::__private::DeserializeOwned,
            A0: ::mem_isolate::__private::Serialize
                + ::mem_isolate::__private::DeserializeOwned,
            A1: ::mem_isolate::__private::Serialize
                + ::mem_isolate::__private::DeserializeOwned,
        {
            ::mem_isolate::__private::Isolate::call(
                isolate,
                ::core::convert::Into::into(function),
                (a0, a1),
            )
        }
        __call(&__isolate, __body, ::std::borrow::Cow::Borrowed(text), min)
    }
}
impl Index {
    fn lookup(
        &self,
        key: String,
    ) -> ::core::result::Result<Option<u64>, ::mem_isolate::__private::MemIsolateError> {
        let __isolate = ::mem_isolate::__private::Isolate::new();
        let __body: fn(_) -> _ = |
            (__self, key): (::std::borrow::Cow<'_, Self>, String),
        | -> Option<u64> {
            let __self: &Self = &*__self;
            { __self.entries.get(&key).copied() }
        };
        {
            fn __call<F, T, A0, A1>(
                isolate: &::mem_isolate::__private::Isolate,
                function: F,
                a0: A0,
                a1: A1,
            ) -> ::core::result::Result<T, ::mem_isolate::__private::MemIsolateError>
            where
                F: ::core::convert::Into<fn((A0, A1)) -> T>,
                T: ::mem_isolate::__private::Serialize
                    + ::mem_isolate::__private::DeserializeOwned,
                A0: ::mem_isolate::__private::Serialize
                    + ::mem_isolate::__private::DeserializeOwned,
                A1: ::mem_isolate::__private::Serialize
                    + ::mem_isolate::__private::DeserializeOwned,
            {
                ::mem_isolate::__private::Isolate::call(
                    isolate,
                    ::core::convert::Into::into(function),
                    (a0, a1),
                )
            }
            __call(&__isolate, __body, ::std::borrow::Cow::Borrowed(self), key)
        }
    }
}
fn largest<T: Ord + Clone>(
    items: Vec<T>,
) -> ::core::result::Result<Option<T>, ::mem_isolate::__private::MemIsolateError> {
    let __isolate = ::mem_isolate::__private::Isolate::new();
    let __body: fn(_) -> _ = |(items,): (Vec<T>,)| -> Option<T> {
        items.iter().max().cloned()
    };
    {
        fn __call<F, T, A0>(
            isolate: &::mem_isolate::__private::Isolate,
            function: F,
            a0: A0,
        ) -> ::core::result::Result<T, ::mem_isolate::__private::MemIsolateError>
        where
            F: ::core::convert::Into<fn((A0,)) -> T>,
            T: ::mem_isolate::__private::Serialize
                + ::mem_isolate::__private::DeserializeOwned,
            A0: ::mem_isolate::__private::Serialize
                + ::mem_isolate::__private::DeserializeOwned,
        {
            ::mem_isolate::__private::Isolate::call(
                isolate,
                ::core::convert::Into::into(function),
                (a0,),
            )
        }
        __call(&__isolate, __body, items)
    }
}
