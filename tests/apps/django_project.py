"""A minimal Django project: settings configured in code, one view, and the ASGI application
Django makes for it (``get_asgi_application()``), as ``django-admin startproject`` would serve it.
Django writes its response header names as it spells them (``Content-Type``)."""

from __future__ import annotations

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="refserver-tests-only",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # (imported once the settings are configured)
from django.http import HttpRequest, HttpResponse
from django.urls import path


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"hello from django", content_type="text/plain")


urlpatterns = [path("", hello)]

application = get_asgi_application()
