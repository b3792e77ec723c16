impl Worker {
    fn render(
        &self,
        deadline: Duration,
        page: Page,
    ) -> ::core::result::Result<Vec<u8>, ::mem_isolate::__private::MemIsolateError> {
        let __timeout: ::core::time::Duration = deadline;
        let __memory_limit: u64 = self.memory_budget;
        let __isolate = ::mem_isolate::__private::Isolate::new()
            .timeout(__timeout)
            .memory_limit(__memory_limit);
        <::mem_isolate::__private::Isolate>::execute(
            &__isolate,
            move || -> Vec<u8> { self.renderer.render(page) },
        )
    }
    fn quick(
        &self,
    ) -> ::core::result::Result<u8, ::mem_isolate::__private::MemIsolateError> {
        let __isolate: &::mem_isolate::__private::Isolate = &(&self.isolate);
        let __isolate = <::mem_isolate::__private::Isolate as ::core::clone::Clone>::clone(
                __isolate,
            )
            .timeout(::core::time::Duration::from_nanos(1000000000u64));
        <::mem_isolate::__private::Isolate>::execute(
            &__isolate,
            move || -> u8 { self.quick_value },
        )
    }
}
