"""Note [Resend policy] (vmpoolerd/vsphere/resend.py), without a server."""

from __future__ import annotations

import http.client
import ssl
from types import SimpleNamespace

from pyVmomi import vim, vmodl
from twisted.trial.unittest import SynchronousTestCase

from vmpoolerd.vsphere.resend import SAFE_TO_RESEND, Step, next_step, refusal_in

REFUSED = vim.fault.NotAuthenticated()
CUTS = (ConnectionResetError(), BrokenPipeError(), ssl.SSLEOFError(),
        http.client.BadStatusLine("x"))


class NextStepTests(SynchronousTestCase):
    def test_a_refused_request_goes_again_once_after_a_login(self) -> None:
        for method in ("RetrievePropertiesEx", "CloneVM_Task"):
            self.assertEqual(next_step(REFUSED, method, False, False), Step.LOGIN_AND_RESEND)
            self.assertEqual(next_step(REFUSED, method, False, True), Step.LOGIN_AND_RESEND)
            self.assertEqual(next_step(REFUSED, method, True, False), Step.RAISE)

    def test_a_cut_request_goes_again_once_if_safe(self) -> None:
        for cut in CUTS:
            for method in SAFE_TO_RESEND:
                self.assertEqual(next_step(cut, method, False, False), Step.RESEND)
                self.assertEqual(next_step(cut, method, True, False), Step.RESEND)
                self.assertEqual(next_step(cut, method, False, True), Step.RAISE)

    def test_a_change_that_may_have_been_done_is_not_sent_again(self) -> None:
        for method in ("CloneVM_Task", "CreateSnapshot_Task", "ReconfigVM_Task",
                       "PowerOnVM_Task", "Login"):
            self.assertNotIn(method, SAFE_TO_RESEND)
            self.assertEqual(next_step(ConnectionResetError(), method, False, False), Step.RAISE)

    def test_timeouts_and_other_faults_are_not_retried(self) -> None:
        for error in (TimeoutError(), vmodl.fault.ManagedObjectNotFound(),
                      vim.fault.InvalidLogin(), ValueError()):
            self.assertEqual(next_step(error, "RetrievePropertiesEx", False, False), Step.RAISE)


def _content(*faults: object) -> SimpleNamespace:
    return SimpleNamespace(missingSet=[SimpleNamespace(fault=f) for f in faults])


class RefusalInTests(SynchronousTestCase):
    def test_a_read_refused_in_its_missing_set(self) -> None:
        lost = SimpleNamespace(objects=[_content(), _content(vmodl.fault.SecurityError(),
                                                             REFUSED)])
        self.assertIs(refusal_in("RetrievePropertiesEx", lost), REFUSED)
        self.assertIs(refusal_in("ContinueRetrievePropertiesEx", lost), REFUSED)
        self.assertIs(refusal_in("RetrieveProperties", lost.objects), REFUSED)

    def test_anything_else_is_no_refusal(self) -> None:
        fine = SimpleNamespace(objects=[_content(), _content(vmodl.fault.SecurityError())])
        self.assertIsNone(refusal_in("RetrievePropertiesEx", fine))
        self.assertIsNone(refusal_in("RetrievePropertiesEx", None))
        self.assertIsNone(refusal_in("RetrieveProperties", None))
        self.assertIsNone(refusal_in("CloneVM_Task", SimpleNamespace(objects=[_content(REFUSED)])))
