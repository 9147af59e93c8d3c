import t from 'tap';
import { estimateWaitSeconds } from '../../src/acd/estimate.js';

t.test('estimated wait: half a handle time for the next caller, one more per caller ahead, shared by the agents', async (t) => {
  t.equal(estimateWaitSeconds(1, 1, 180), 90);
  t.equal(estimateWaitSeconds(3, 1, 180), 450);
  t.equal(estimateWaitSeconds(3, 10, 180), 45);
  t.equal(estimateWaitSeconds(1, 0, 180), Number.POSITIVE_INFINITY, 'nobody staffed: no honest estimate');
});
