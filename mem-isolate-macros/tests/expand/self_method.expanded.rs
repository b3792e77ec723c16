impl Cache {
    pub fn lookup(
        &self,
        key: &str,
    ) -> ::mem_isolate::__private::Result<
        Option<String>,
        ::mem_isolate::__private::MemIsolateError,
    > {
        ::mem_isolate::__private::Isolate::new()
            .execute(move || -> Option<String> { self.entries.get(key).cloned() })
    }
    fn scribble(
        &mut self,
    ) -> ::mem_isolate::__private::Result<
        usize,
        ::mem_isolate::__private::MemIsolateError,
    > {
        ::mem_isolate::__private::Isolate::new()
            .execute(move || -> usize {
                self.entries.clear();
                self.entries.len()
            })
    }
}
