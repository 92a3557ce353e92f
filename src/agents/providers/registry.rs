//! Which providers exist for each capability. Adding one is a file beside `sim.rs` and a
//! line in `builtin` for each capability it serves.

use std::sync::Arc;

use serde_json::Value;

use super::capability::{Capacity, Database, Dial, Provider};
use super::{postgres, rfc2136, sim};
use crate::agents::work::Failure;
use crate::workflow::{SpecError, Target, TargetKind};

#[derive(Clone, Default)]
pub struct Providers {
    pub capacity: Vec<Provider<dyn Capacity>>,
    pub database: Vec<Provider<dyn Database>>,
    pub dial: Vec<Provider<dyn Dial>>,
}

impl Providers {
    /// The providers this build ships.
    pub fn builtin() -> Providers {
        #[allow(unused_mut)]
        let mut p = Providers {
            capacity: vec![sim::CAPACITY],
            database: vec![sim::DATABASE, postgres::DATABASE],
            dial: vec![sim::DIAL, rfc2136::DIAL],
        };
        #[cfg(feature = "aws")]
        {
            use super::aws;
            p.capacity.push(aws::autoscaling::CAPACITY);
            p.database
                .extend([aws::rds::RDS, aws::rds::AURORA, aws::rds::AURORA_GLOBAL]);
            p.dial.push(aws::route53::DIAL);
        }
        #[cfg(feature = "kubernetes")]
        p.capacity.push(super::kubernetes::CAPACITY);
        p
    }

    pub fn names(&self, kind: TargetKind) -> Vec<&'static str> {
        match kind {
            TargetKind::Cluster => self.capacity.iter().map(|p| p.name).collect(),
            TargetKind::Database => self.database.iter().map(|p| p.name).collect(),
            TargetKind::Endpoint => self.dial.iter().map(|p| p.name).collect(),
        }
    }

    /// Checks a target's fields against its provider, which `names` lists.
    pub fn check(&self, kind: TargetKind, provider: &str, fields: &Value) -> Result<(), SpecError> {
        let check = match kind {
            TargetKind::Cluster => find(&self.capacity, provider).map(|p| p.check),
            TargetKind::Database => find(&self.database, provider).map(|p| p.check),
            TargetKind::Endpoint => find(&self.dial, provider).map(|p| p.check),
        };
        match check {
            Some(check) => check(fields),
            None => Err(SpecError::at(
                &[],
                format!("unknown {kind} provider `{provider}`"),
            )),
        }
    }

    pub fn capacity(&self, target: &Target) -> Result<Arc<dyn Capacity>, Failure> {
        build(&self.capacity, target)
    }

    pub fn database(&self, target: &Target) -> Result<Arc<dyn Database>, Failure> {
        build(&self.database, target)
    }

    pub fn dial(&self, target: &Target) -> Result<Arc<dyn Dial>, Failure> {
        build(&self.dial, target)
    }
}

fn find<'a, P: ?Sized>(list: &'a [Provider<P>], name: &str) -> Option<&'a Provider<P>> {
    list.iter().find(|p| p.name == name)
}

fn build<P: ?Sized>(list: &[Provider<P>], target: &Target) -> Result<Arc<P>, Failure> {
    let provider = find(list, &target.provider).ok_or_else(|| {
        Failure::permanent(format!(
            "{} `{}`: this agent has no provider `{}`",
            target.kind, target.name, target.provider
        ))
    })?;
    (provider.build)(target)
}
