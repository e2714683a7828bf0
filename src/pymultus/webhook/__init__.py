"""``pymultus webhook``: a validating admission webhook for NetworkAttachmentDefinitions and
the network-selection annotations of pods (feature row 23).

::

    review    AdmissionReview v1: body limits, decoding, the response
    rules     what is allowed: NAD configs, pod annotations (the core's parsers and rules)
    tls       the serving certificate, re-read when its files change
    server    HTTPS (stdlib, threaded): /validate, /healthz, /readyz, /metrics
    certs     ``pymultus webhook-certs``: a self-signed CA and serving certificate in a Secret
"""
