//! The f32 blob must reproduce transformers: for every fixture, case and output,
//! `max |engine - transformers| / max |transformers| ≤ 1e-4`.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_tests::{Fixture, engine_name, fixture_names, rel_max_err, run_case};

const TOL: f64 = 1e-4;

#[test]
fn f32_blob_matches_transformers_on_every_fixture() {
    let mut worst = (0f64, String::new());
    let mut checked = 0;
    for name in fixture_names().unwrap() {
        let fx = Fixture::load(&name).unwrap();
        let blob = fx.pack(DType::F32).unwrap();
        let model = Model::from_bytes(blob.as_bytes()).unwrap();
        for case in &fx.cases {
            let got = run_case(&model, case).unwrap_or_else(|e| panic!("{name}/{}: {e}", case.name));
            for (out, golden) in &case.golden {
                let mine = &got[engine_name(&fx.model_class, out)];
                assert_eq!(mine.data.len(), golden.data.len(), "{name}/{}/{out}: size", case.name);
                let err = rel_max_err(&mine.data, &golden.data);
                println!("{name:>16} {:>22} {out:>18} rel-max-err {err:.2e}", case.name);
                assert!(err <= TOL, "{name}/{}/{out}: relative max error {err:e} > {TOL:e}", case.name);
                if err > worst.0 {
                    worst = (err, format!("{name}/{}/{out}", case.name));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    println!("checked {checked} outputs; worst relative max error {:.2e} at {}", worst.0, worst.1);
}
