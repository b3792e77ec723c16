impl Cache {
    #[allow(clippy::missing_errors_doc)]
    pub fn lookup(
        &self,
        key: &str,
    ) -> ::core::result::Result<
        Option<String>,
        ::mem_isolate::__private::MemIsolateError,
    > {
        let __isolate = ::mem_isolate::__private::Isolate::new();
        <::mem_isolate::__private::Isolate>::execute(
            &__isolate,
            move || -> Option<String> { self.entries.get(key).cloned() },
        )
    }
    fn scribble(
        &mut self,
    ) -> ::core::result::Result<usize, ::mem_isolate::__private::MemIsolateError> {
        let __isolate = ::mem_isolate::__private::Isolate::new();
        <::mem_isolate::__private::Isolate>::execute(
            &__isolate,
            move || -> usize {
                self.entries.clear();
                self.entries.len()
            },
        )
    }
}
