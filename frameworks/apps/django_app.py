"""Django: settings in code, one view, and ``get_asgi_application()`` (Django serves no WebSocket)."""

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="refserver-framework-findings",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402  (once the settings are configured)
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


urlpatterns = [path("", hello)]

app = get_asgi_application()
