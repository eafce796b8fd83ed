//! The compliance kit against the fault-injection `fake` driver with no
//! faults configured: it must behave like any other driver.

use scoria_core::config::BackendConfig;
use scoria_drivers::compliance::Fixture;
use scoria_drivers::registry;

async fn fake() -> Fixture {
    let config = BackendConfig {
        name: "fake".into(),
        driver: "fake".into(),
        volume_backend_name: "fake".into(),
        options: Default::default(),
    };
    let driver = registry::create(&config).expect("fake driver config");
    driver.setup().await.expect("fake driver setup");
    Fixture::new(driver)
}

scoria_drivers::compliance_tests!(fake);
