//! Output shipped to the coordinator: what running and finished workloads wrote since the
//! last frame, as log frames, a bounded number per instance and poll.

use super::Supervisor;
use super::workloads::Phase;
use gpuspot_common::InstanceId;
use gpuspot_common::protocol::AgentMessage;

/// How many log chunks one poll ships per instance.
const LOG_CHUNKS_PER_POLL: usize = 16;

impl Supervisor {
    /// Output not yet shipped, as log frames (all instances, or one).
    pub fn pending_logs(&mut self, only: Option<&InstanceId>) -> Vec<AgentMessage> {
        let tails = (self.workloads.iter_mut())
            .filter_map(|(id, phase)| match phase {
                Phase::Running(running) => Some((id, &mut running.log)),
                Phase::Finished(finished) => Some((id, &mut finished.log)),
                Phase::Restoring(_) | Phase::Starting(_) => None,
            })
            .filter(|(id, _)| only.is_none_or(|o| o == *id));
        let mut frames = Vec::new();
        for (id, tail) in tails {
            for _ in 0..LOG_CHUNKS_PER_POLL {
                match tail.read_chunk() {
                    Some((offset, data)) => {
                        frames.push(AgentMessage::Log { instance_id: id.clone(), offset, data })
                    }
                    None => break,
                }
            }
        }
        frames
    }
}
